"""`python -m bench`: the rush, the floor and the push; a table, and docs/performance.md.

    python -m bench                          # 2,000 parents at once at 0 and 50 ms, the same
                                             # paced (15 s per step), floor, 100,000 pushes
    python -m bench --parents 10000 --latency-ms 0 --paced-ms 0 --only rush,floor
    python -m bench --parents 50 --pushes 1000 --out -      # a quick look, no file written
    python -m bench --think-ms 3000          # a paced crowd: each parent thinks ~3 s per step
    python -m bench --profile /tmp/rush.txt  # pyinstrument profile of the rush (pip install it)

Exit status 0 when every application and every push is accounted for, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import re
import sys
from pathlib import Path
from typing import Any

from bench import report as rep
from bench.floor import Handler, run_floor
from bench.push import run_push
from bench.rush import RushResult, run_rush
from bot.gc_tuning import DEFAULT_YOUNG, tune_gc

ROOT = Path(__file__).resolve().parent.parent
UPDATES_PER_PARENT = 24  # the journey's updates, for a floor run without a rush
_DIGITS = re.compile(r"\d+")


class CountingHandler(logging.Handler):
    """Counts log records by logger, level and message with digits masked (no personal data)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.counts: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = _DIGITS.sub("N", record.getMessage())[:140]
        except Exception:  # a record that cannot be formatted is still counted
            message = str(record.msg)[:140]
        self.counts[f"{record.name} {record.levelname}: {message}"] += 1


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--parents", type=int, default=2000, help="parents in the rush")
    parser.add_argument(
        "--latency-ms", type=_ints, default=[0, 50], help="sandbox latencies, e.g. 0,50"
    )
    parser.add_argument(
        "--think-ms",
        type=_ints,
        default=[0],
        help="a parent's pause before each action, e.g. 0,3000 (0: as fast as the bot answers)",
    )
    parser.add_argument(
        "--paced-ms",
        type=int,
        default=15_000,
        help="then one paced rush at 0 ms latency with this think time (0: none); the issue's"
        " p99 at 2,000 concurrent parents is a latency at a human pace, not a queue",
    )
    parser.add_argument(
        "--gc-young",
        type=int,
        default=DEFAULT_YOUNG,
        help="the bot's collector setting (bot/gc_tuning.py), applied after the warm-up as"
        " `voucher-bot run` applies it after start-up; 0: Python's defaults",
    )
    parser.add_argument("--pushes", type=int, default=100_000, help="status pushes to deliver")
    parser.add_argument(
        "--only", default="rush,floor,push", help="which parts: any of rush, floor, push"
    )
    parser.add_argument(
        "--sandbox",
        choices=("process", "inprocess"),
        default="process",
        help="the sandbox in its own process (default: honest bot CPU) or in this one",
    )
    parser.add_argument("--floor-runs", type=int, default=3, help="floor runs (median reported)")
    parser.add_argument("--out", default="docs/performance.md", help="Markdown file, or - for none")
    parser.add_argument("--label", default=None, help="also add a row to the history table")
    parser.add_argument(
        "--block", default="results", help="which figures block of --out to rewrite"
    )
    parser.add_argument("--profile", default=None, help="profile the rush with pyinstrument here")
    parser.add_argument("--verbose", action="store_true", help="print warnings as they happen")
    parser.add_argument(
        "--no-warmup",
        dest="warmup",
        action="store_false",
        help="skip the 10-parent rush (not reported) that warms imports and caches first",
    )
    args = parser.parse_args(argv)
    args.only = {part.strip() for part in args.only.split(",") if part.strip()}
    unknown = args.only - {"rush", "floor", "push"}
    if unknown:
        parser.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}")
    return args


async def run(args: argparse.Namespace, report: rep.Report) -> None:
    """Every asked part, in order: rush scenarios, the floor with their update count, pushes."""
    profiler = None
    if args.profile and "rush" in args.only:
        try:
            from pyinstrument import Profiler
        except ImportError:
            sys.exit("--profile needs pyinstrument: .venv/bin/pip install pyinstrument")
        profiler = Profiler(interval=0.005, async_mode="disabled")
    if "rush" in args.only and args.warmup:
        _say("warm-up: a 10-parent rush, not reported …")
        await run_rush(10, sandbox_mode=args.sandbox)
    tune_gc(args.gc_young)
    if "rush" in args.only:
        scenarios = [(think, latency) for think in args.think_ms for latency in args.latency_ms]
        if args.paced_ms > 0 and (args.paced_ms, 0) not in scenarios:
            scenarios.append((args.paced_ms, 0))
        for think, latency in scenarios:
            _say(f"rush: {args.parents:,} parents, latency {latency} ms, think {think} ms …")
            if profiler is not None:
                profiler.start()
            result = await run_rush(
                args.parents, latency_ms=latency, think_ms=think, sandbox_mode=args.sandbox
            )
            if profiler is not None:
                profiler.stop()
            report.rushes.append(result)
            _say(_rush_line(result))
    if "floor" in args.only:
        updates = _floor_updates(report.rushes, args.parents)
        # The no-op floor parsed and prebuilt, then each bare bot that answers (parsed).
        kinds = [(True, Handler.NOOP), (False, Handler.NOOP)]
        kinds += [(True, handler) for handler in Handler if handler is not Handler.NOOP]
        for parse, handler in kinds:
            for _ in range(max(1, args.floor_runs)):
                floor = await run_floor(updates, args.parents, parse=parse, handler=handler)
                report.floors.append(floor)
                kind = handler.value if parse else "prebuilt"
                _say(f"floor ({kind}): {floor.updates_per_second:,.0f} updates/s")
    if "push" in args.only:
        _say(f"push: {args.pushes:,} status changes …")
        pushed = await run_push(args.pushes)
        report.pushes.append(pushed)
        _say(f"push: {pushed.delivered:,} delivered in {pushed.drain_seconds:.1f} s")
    if profiler is not None:
        _write_profile(profiler, Path(args.profile))


def _floor_updates(rushes: list[RushResult], parents: int) -> int:
    """The update count of the first rush at 0 ms latency (else of the first), or an estimate."""
    for rush in sorted(rushes, key=lambda r: (r.latency_ms, r.think_ms)):
        if rush.updates:
            return rush.updates
    return parents * UPDATES_PER_PARENT


def _rush_line(r: RushResult) -> str:
    lat = r.latency_ms_summary
    return (
        f"  {r.completed:,}/{r.parents:,} completed, {r.updates:,} updates, "
        f"{r.updates_per_second:,.0f}/s, p99 {lat.get('p99', 0):,.0f} ms, "
        f"{r.wall_seconds:,.0f} s"
    )


def _write_profile(profiler: Any, path: Path) -> None:
    """The call tree (text, or HTML for a .html path) and, beside it, the summary by library."""
    from bench.profile import summarize

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".html":
        path.write_text(profiler.output_html(), encoding="utf-8")
    else:
        path.write_text(profiler.output_text(unicode=True, color=False), encoding="utf-8")
    profiler.last_session.save(str(path.with_suffix(".pyisession")))  # to look at it again
    summary = path.with_name(path.stem + ".summary.md")
    summary.write_text(summarize(profiler.last_session) + "\n", encoding="utf-8")
    _say(f"profile written to {path} and {summary}")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    counter = CountingHandler()
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    root.addHandler(counter)
    if args.verbose:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    else:
        # Counted, not printed: a rush can log thousands of identical warnings.
        root.addHandler(logging.NullHandler())
    report = rep.Report(
        command=rep.command_line(),
        started=rep.now_utc(),
        machine=rep.Machine.here(),
        code=rep.code_state(ROOT),
    )
    asyncio.run(run(args, report))
    report.log_summary = dict(counter.counts)
    print(rep.render_text(report))
    if args.out != "-":
        out = Path(args.out)
        rep.write_markdown(
            out if out.is_absolute() else ROOT / out, report, label=args.label, block=args.block
        )
        _say(f"figures written to {out}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
