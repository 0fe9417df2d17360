"""The benchmark's report: a table for the terminal and a Markdown block for docs/performance.md.

`docs/performance.md` is partly ours and partly the team's: this module replaces only what lies
between the `bench:results` markers (the figures of the latest run) and, with a label, adds one
row to the `bench:history` table, so the analysis written around them stays.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.floor import FloorResult, Handler
from bench.push import PushResult
from bench.rush import RushResult

BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
HISTORY_BEGIN, HISTORY_END = "<!-- bench:history:begin -->", "<!-- bench:history:end -->"
MB = 1024 * 1024


@dataclass
class Machine:
    cpus: int
    memory: str
    python: str
    aiogram: str
    platform: str

    @classmethod
    def here(cls) -> Machine:
        import aiogram

        return cls(
            cpus=os.cpu_count() or 0,
            memory=_total_memory(),
            python=platform.python_version(),
            aiogram=aiogram.__version__,
            platform=f"{platform.system()} {platform.release()} {platform.machine()}",
        )


@dataclass
class Report:
    command: str
    started: datetime
    machine: Machine
    code: str
    floors: list[FloorResult] = field(default_factory=list)
    rushes: list[RushResult] = field(default_factory=list)
    pushes: list[PushResult] = field(default_factory=list)
    log_summary: dict[str, int] = field(default_factory=dict)

    @property
    def floor(self) -> FloorResult | None:
        """The median of the no-op floor runs that built updates in the timed loop."""
        return self.floor_of(Handler.NOOP)

    @property
    def floor_prebuilt(self) -> FloorResult | None:
        return self.floor_of(Handler.NOOP, parse=False)

    def floor_of(self, handler: Handler, *, parse: bool = True) -> FloorResult | None:
        """The median of the floor runs with this handler (see bench/floor.py)."""
        return _median(f for f in self.floors if f.handler is handler and f.parse is parse)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rushes) and all(p.ok for p in self.pushes)


def code_state(root: Path) -> str:
    """The commit and whether the tree differs from it (read-only git calls), or "unknown"."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    changed = len(dirty.splitlines())
    return f"{head}" + (f" + {changed} changed file(s) not committed" if changed else "")


# --- formatting --------------------------------------------------------------------------


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _ms(summary: dict[str, float]) -> str:
    if not summary:
        return "–"
    return " / ".join(_short_ms(summary[k]) for k in ("p50", "p95", "p99"))


def _short_ms(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:,.1f} s"
    if value >= 10:
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _with_unit(short: str) -> str:
    """`_short_ms` text with its unit: seconds say so already, milliseconds get "ms"."""
    return short if short.endswith(" s") else f"{short} ms"


def _mb(value: float) -> str:
    return f"{value / MB:,.1f}"


STEPS_TITLE = "Rush by step: handling p50 / p99 (ms) · share of the run's slowest 1 % of updates"


def rush_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the rush table (one column per scenario)."""
    floor = report.floor
    prebuilt = report.floor_prebuilt
    head = ["", *(_scenario(r) for r in report.rushes)]
    rows: list[list[str]] = []

    def row(name: str, cell: object) -> None:
        rows.append([name, *(str(cell(r)) for r in report.rushes)])  # type: ignore[operator]

    row("parents", lambda r: _n(r.parents))
    row("applications completed (= N?)", lambda r: f"{_n(r.completed)} {'✓' if r.ok else '✗'}")
    row("applications in the sandbox", lambda r: _n(r.applications))
    row(
        "duplicated / lost / wrong number",
        lambda r: f"{r.duplicated} / {r.lost} / {r.wrong_number}",
    )
    row("updates handled", lambda r: _n(r.updates))
    row("updates/s (first update → last update)", lambda r: _n(r.updates_per_second))
    if floor:
        row(
            f"÷ floor ({_n(floor.updates_per_second)}/s, updates parsed in the loop)",
            lambda r: f"{r.updates_per_second / floor.updates_per_second:.3f}",
        )
    if prebuilt:
        row(
            f"÷ floor ({_n(prebuilt.updates_per_second)}/s, updates prebuilt)",
            lambda r: f"{r.updates_per_second / prebuilt.updates_per_second:.3f}",
        )
    for handler, name in _BARE.items():
        bare = report.floor_of(handler)
        if bare is not None:
            row(
                f"÷ bare bot {name} ({_n(bare.updates_per_second)}/s)",
                lambda r, bare=bare: f"{r.updates_per_second / bare.updates_per_second:.3f}",
            )
    row("handling per update p50 / p95 / p99 (ms)", lambda r: _ms(r.latency_ms_summary))
    row("slowest update (ms)", lambda r: _short_ms(r.latency_ms_summary.get("max", 0)))
    row("submit → number p50 / p95 / p99 (ms)", lambda r: _ms(r.number_wait_ms))
    row("wall time of the run (s)", lambda r: _n(r.wall_seconds, 1))
    row("bot CPU µs per update", lambda r: _n(r.cpu_us_per_update()))
    row("… process CPU µs per update (raw)", lambda r: _n(r.cpu_us_per_update(raw=True)))
    row(
        "… of which Telegram stand-in / parents' phones",
        lambda r: (
            f"{_n(r.telegram_cpu / max(r.updates, 1) * 1e6)} / "
            f"{_n(r.harness_http_calls * r.harness_cpu_per_call / max(r.updates, 1) * 1e6)}"
        ),
    )
    row(
        "sandbox process CPU µs per update",
        lambda r: _n(r.sandbox_cpu / r.updates * 1e6) if r.sandbox_cpu and r.updates else "–",
    )
    row(
        "event loop busy while handling (%)",
        lambda r: f"{r.loop_busy * 100:.0f}" if r.loop_busy is not None else "–",
    )
    row(
        "SQLite writes / commits per update",
        lambda r: (
            f"{r.writes / r.updates:.2f} / {r.commits / r.updates:.2f}"
            if r.commits and r.updates
            else "–"
        ),
    )
    row(
        "RSS before / peak / after (MB)",
        lambda r: f"{_mb(r.rss_before)} / {_mb(r.rss_peak)} / {_mb(r.rss_after)}",
    )
    row("RSS at peak per 1,000 parents in flight (MB)", lambda r: _mb(r.rss_peak_per_1000))
    row("RSS kept per 1,000 parents after the rush (MB)", lambda r: _mb(r.rss_growth_per_1000))
    row("Python memory blocks kept per parent (after gc)", lambda r: _n(r.blocks_per_parent))
    row("RSS after closing the app (MB)", lambda r: _mb(r.rss_closed))
    row(
        "bot database: file + WAL (MB)",
        lambda r: f"{_mb(r.db_sizes.get('db', 0))} + {_mb(r.db_sizes.get('-wal', 0))}",
    )
    row("sandbox database (MB)", lambda r: _mb(r.sandbox_db_bytes))
    return head, rows


def step_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """Handling time by step of the journey: p50 / p99 (ms) and the step's part of the run's
    slowest 1 % of updates, one column per scenario; steps in journey order."""
    head = ["step", *(_scenario(r) for r in report.rushes)]
    names: dict[str, None] = {}
    for r in report.rushes:
        names.update(dict.fromkeys(r.steps))
    slowest = [max(1, sum(s.in_slowest for s in r.steps.values())) for r in report.rushes]
    rows = []
    for name in names:
        cells = [name]
        for r, tail in zip(report.rushes, slowest, strict=True):
            step = r.steps.get(name)
            cells.append(
                "–"
                if step is None
                else f"{_short_ms(step.p50_ms)} / {_short_ms(step.p99_ms)}"
                f" · {step.in_slowest * 100 / tail:.0f} %"
            )
        rows.append(cells)
    return head, rows


def _scenario(r: RushResult) -> str:
    think = f", think {r.think_ms} ms" if r.think_ms else ""
    where = "" if r.sandbox_mode == "process" else ", sandbox in-process"
    return f"latency {r.latency_ms} ms{think}{where}"


def push_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    head = ["", *(f"{_n(p.pushes)} pushes, rate {p.rate:g}/s" for p in report.pushes)]
    rows: list[list[str]] = []

    def row(name: str, cell: object) -> None:
        rows.append([name, *(str(cell(p)) for p in report.pushes)])  # type: ignore[operator]

    row("chats (changes per chat)", lambda p: f"{_n(p.chats)} ({p.pushes // max(p.chats, 1)})")
    row("delivered (= all?)", lambda p: f"{_n(p.delivered)} {'✓' if p.ok else '✗'}")
    row("duplicates / lost", lambda p: f"{p.duplicates} / {p.lost}")
    row(
        "outbox rows sent / failed / pending",
        lambda p: " / ".join(_n(p.outbox_counts.get(k, 0)) for k in ("sent", "failed", "pending")),
    )
    row(
        "Bot API calls; 429 random (1 %) / for a broken limit",
        lambda p: f"{_n(p.calls)}; {p.mandated_429} / {p.limit_429}",
    )
    row("virtual time first → last send (s)", lambda p: _n(p.virtual_seconds, 1))
    row("sends paused for every chat (429s from 3 chats within 1 s)", lambda p: p.flood_pauses)
    row(
        "rate (msg/s, share of 30/s)",
        lambda p: f"{p.achieved_rate:.2f} ({p.achieved_rate / 30:.1%})",
    )
    row("most messages in any 1 s (limit 30)", lambda p: p.busiest_second)
    row("sender CPU µs per message (fake API excluded)", lambda p: _n(p.sender_cpu_us_per_message))
    row("fake Bot API CPU µs per call", lambda p: _n(p.fake_cpu / max(p.calls, 1) * 1e6))
    row(
        "enqueue: wall s / CPU µs per push",
        lambda p: f"{p.enqueue_seconds:.1f} / {_n(p.enqueue_cpu / max(p.pushes, 1) * 1e6)}",
    )
    row("drain: wall s for the whole run", lambda p: _n(p.drain_seconds, 1))
    row("SQLite commits per message while draining", lambda p: f"{p.commits_per_message:.2f}")
    row("database after (MB)", lambda p: _mb(p.db_bytes))
    return head, rows


def _median(runs: Iterable[FloorResult]) -> FloorResult | None:
    ordered = sorted(runs, key=lambda f: f.updates_per_second)
    return ordered[len(ordered) // 2] if ordered else None


# How the rush table names each bare bot that answers (bench/floor.py says what each does).
_BARE = {
    Handler.ANSWER: "answering each update",
    Handler.LIKE_KEZEK: "answering like the rush, state in memory",
    Handler.LIKE_KEZEK_SQLITE: "answering like the rush, state in our SQLite storage",
}
_FLOOR_KIND = {
    Handler.ANSWER: "answering each update (one message + keyboard), parsed",
    Handler.LIKE_KEZEK: "answering like the rush (7 of 9 updates pressed buttons), state in memory",
    Handler.LIKE_KEZEK_SQLITE: (
        "answering like the rush, state set in our SQLite storage (synchronous=FULL)"
    ),
}


def _floor_kind(f: FloorResult) -> str:
    if f.handler is Handler.NOOP:
        return "updates parsed in the loop" if f.parse else "updates prebuilt"
    return _FLOOR_KIND[f.handler]


def floor_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    head = [
        "floor run",
        "updates",
        "chats",
        "updates/s",
        "CPU µs/update",
        "Bot API calls/update",
        "p50 / p95 / p99 (ms)",
    ]
    rows = [
        [
            _floor_kind(f),
            _n(f.updates),
            _n(f.users),
            _n(f.updates_per_second),
            _n(f.cpu_us_per_update, 1),
            f"{f.calls / f.updates:.2f}" if f.updates else "–",
            _ms(f.latency_ms_summary),
        ]
        for f in report.floors
    ]
    return head, rows


def text_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_text(report: Report) -> str:
    parts = [
        f"Kezek benchmark — {report.started:%Y-%m-%d %H:%M} UTC — {report.machine.cpus} CPU, "
        f"Python {report.machine.python}, aiogram {report.machine.aiogram} — code {report.code}",
    ]
    if report.floors:
        parts += ["", "Floor (bare Dispatcher, MemoryStorage, no-op handler)"]
        parts.append(text_table(*floor_rows(report)))
    if report.rushes:
        parts += ["", "Rush"]
        parts.append(text_table(*rush_rows(report)))
        parts += _failures(report, markdown=False)
        parts += ["", STEPS_TITLE]
        parts.append(text_table(*step_rows(report)))
    if report.pushes:
        parts += ["", "Push"]
        parts.append(text_table(*push_rows(report)))
    if report.log_summary:
        parts += ["", "Log records at WARNING and above during the run:"]
        parts += [f"  {count:>7,} × {what}" for what, count in _top_logs(report)]
    parts += ["", "RESULT: " + ("all correct" if report.ok else "SOMETHING WAS LOST OR DUPLICATED")]
    return "\n".join(parts)


def render_markdown(report: Report) -> str:
    m = report.machine
    parts = [
        f"Latest run: **{report.started:%Y-%m-%d %H:%M} UTC**, code `{report.code}`.",
        "",
        f"- Machine: {m.cpus} CPU cores (`nproc`), {m.memory} RAM, {m.platform}",
        f"- Python {m.python}, aiogram {m.aiogram}",
        f"- Command: `{report.command}`",
        "- Verdict: "
        + (
            "every application and push accounted for"
            if report.ok
            else "**something was lost, duplicated or failed — see below**"
        ),
    ]
    if report.floors:
        parts += ["", "#### Floor", "", md_table(*floor_rows(report))]
    if report.rushes:
        parts += ["", "#### Rush", "", md_table(*rush_rows(report))]
        parts += _failures(report, markdown=True)
        parts += ["", "#### " + STEPS_TITLE, "", md_table(*step_rows(report))]
    if report.pushes:
        parts += ["", "#### Push", "", md_table(*push_rows(report))]
    if report.log_summary:
        parts += ["", "Log records at WARNING and above during the run (message templates):", ""]
        parts += [f"- {count:,} × `{what}`" for what, count in _top_logs(report)]
    return "\n".join(parts)


def _top_logs(report: Report) -> list[tuple[str, int]]:
    return sorted(report.log_summary.items(), key=lambda kv: -kv[1])[:12]


def _failures(report: Report, *, markdown: bool) -> list[str]:
    lines: list[str] = []
    for r in report.rushes:
        if not r.failures:
            continue
        lines += ["", f"Parents who did not finish ({_scenario(r)}):"]
        if markdown:
            lines.append("")
        for what, count in list(r.failures.items())[:10]:
            lines.append(f"- {count:,} × {what}" if markdown else f"  {count:>7,} × {what}")
    return lines


def history_row(report: Report, label: str) -> str:
    """One line of the history table: the headline figures of this run."""
    cells = [f"{report.started:%Y-%m-%d}", label, f"`{report.code}`"]
    floor = report.floor
    for r in report.rushes:
        ratio = f" ({r.updates_per_second / floor.updates_per_second:.3f}× floor)" if floor else ""
        cells.append(
            f"{_scenario(r)}: {r.completed}/{r.parents} done, "
            f"{_n(r.updates_per_second)} upd/s{ratio}, "
            f"p99 {_with_unit(_short_ms(r.latency_ms_summary.get('p99', 0)))}, "
            f"{_n(r.cpu_us_per_update())} µs CPU/upd, kept {_mb(r.rss_growth_per_1000)} MB/1k"
        )
    for p in report.pushes:
        cells.append(
            f"push {_n(p.pushes)}: {p.delivered} delivered, {p.duplicates} dup, "
            f"{p.achieved_rate / 30:.1%} of 30/s, "
            f"{_n(p.sender_cpu_us_per_message)} µs CPU/msg"
        )
    return "| " + " | ".join([*cells[:3], "<br>".join(cells[3:])]) + " |"


SKELETON = f"""# Kezek performance

How to run: `python3 tasks.py bench` (the same as `python -m bench`); `--help` lists the options.

## Latest figures

{BEGIN}
{END}

## History

| date | change | code | figures |
|---|---|---|---|
{HISTORY_BEGIN}
{HISTORY_END}
"""


def write_markdown(
    path: Path, report: Report, *, label: str | None = None, block: str = "results"
) -> None:
    """Put this run's figures between the markers of `block` in `path` (created if missing).

    Other blocks (`--block results-10000`: the large run beside the default one) stay as they
    are, so each size keeps its latest figures."""
    text = path.read_text(encoding="utf-8") if path.exists() else SKELETON
    begin, end = (BEGIN, END) if block == "results" else _markers(block)
    if begin not in text or end not in text:
        text = text.rstrip() + f"\n\n## Latest figures ({block})\n\n" + begin + "\n" + end + "\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    text = head + begin + "\n" + render_markdown(report) + "\n" + end + tail
    if label:
        if HISTORY_BEGIN not in text or HISTORY_END not in text:
            text = text.rstrip() + (
                "\n\n## History\n\n| date | change | code | figures |\n|---|---|---|---|\n"
                + HISTORY_BEGIN
                + "\n"
                + HISTORY_END
                + "\n"
            )
        before, after = text.split(HISTORY_END, 1)
        text = before + history_row(report, label) + "\n" + HISTORY_END + after
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _markers(block: str) -> tuple[str, str]:
    if not block.replace("-", "").isalnum():
        raise ValueError(f"a block name is letters, digits and dashes: {block!r}")
    return f"<!-- bench:{block}:begin -->", f"<!-- bench:{block}:end -->"


def _total_memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def now_utc() -> datetime:
    return datetime.now(UTC)


def command_line() -> str:
    # Quoted as a shell would need it: a --label has spaces and commas.
    return shlex.join(["python", "-m", "bench", *sys.argv[1:]])
