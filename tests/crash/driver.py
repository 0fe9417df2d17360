"""A whole Kezek bot in a process of its own, for the SIGKILL tests in this folder.

    python -m tests.crash.driver --db DIR/kezek.sqlite3 --transcript DIR/transcript.jsonl \\
        --script DIR/script.jsonl --user 7001 --phone +77015550001 --child 160301500012

The bot is the real one (`open_app` with `start_sender=True`: the submitter and the outbox
sender run in the background, as in `voucher-bot run`), against the voucher service named by
VOUCHER_API_URL, with its tables in `--db`. Telegram is a LocalBotSession that appends every
message it is asked to show as a JSON line to `--transcript` before answering, so what the
parent saw survives the process. DATA_KEY must be set: the next process reads what this one
sealed. KEZEK_FAILPOINT, if set, kills the process at that point (services/failpoints.py).

The script holds one action a line, run in order; after each one a JSON line goes to stdout:
    {"stage": "phone"}     a stage of tests/conversation/journey.py (start … notifications,
                           submit: the three ticks and *Submit*)
    {"text": "/start"}     a message from the parent
    {"report": true}       stdout gets the FSM state and a digest of the draft
    {"wait": "settled"}    until the application is answered, the state followed it and the
                           outbox is empty (bounded), then a report
    {"hold": true}         wait for ever: the test kills the process now
    {"exit": true}         close everything cleanly and exit 0

`python -m tests.crash.driver --fork-server` is how the tests start it: one process imports
aiogram and the bot once (about 3 s), then forks a fresh child per request read from stdin
(`{"argv": [...], "env": {...}, "log": PATH}`). The child runs exactly the code above, with its
own environment and stderr, and writes its JSON lines to the server's stdout; the server then
reports `{"event": "reaped", "pid", "returncode"}` (-9 after a SIGKILL). Each child is a real
process with nothing shared but the files it is given.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import IO, Any

from aiogram.fsm.storage.base import StorageKey

from bot.app import App, open_app
from bot.config import Settings
from bot.fsm.states import ApplicationForm
from bot.local_chat import LocalChat
from bot.local_session import LocalBotSession, Sent
from services.failpoints import ENV as FAILPOINT_ENV
from tests.conversation.journey import Journey

SETTLE_TIMEOUT = 30.0
POLL = 0.05


class BackgroundJourney(Journey):
    """The journey of the conversation tests; here the submitter runs by itself."""

    async def settle(self) -> None:
        """Nothing to drive: `{"wait": "settled"}` waits for the background work instead."""


def _say(event: dict[str, Any]) -> None:
    print(json.dumps(event, ensure_ascii=False), flush=True)


def _transcribe(out: IO[str], run: str) -> Any:
    def listener(sent: Sent) -> None:
        if sent.visible:
            line = {"run": run, "kind": sent.kind, "chat_id": sent.chat_id, "text": sent.plain}
            line["buttons"] = sent.button_texts
            # Written and flushed before Telegram's answer goes back to the caller: a kill right
            # after the call still leaves the line.
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            out.flush()

    return listener


async def _report(app: App, chat: LocalChat) -> dict[str, Any]:
    key = StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)
    draft = await app.services.store.get_draft(chat.user_id)
    canonical = json.dumps(draft, ensure_ascii=False, sort_keys=True)
    return {
        "event": "report",
        "state": await app.storage.get_state(key),
        "draft_sha": hashlib.sha256(canonical.encode()).hexdigest(),
        "draft_keys": sorted(draft),
        "locale": await app.services.store.get_locale(chat.user_id),
    }


async def _settled(app: App, chat: LocalChat) -> bool:
    store = app.services.store
    outbox = app.services.outbox
    key = StorageKey(bot_id=app.bot.id, chat_id=chat.chat_id, user_id=chat.user_id)
    return (
        await app.storage.get_state(key) == ApplicationForm.submitted.state
        and await store.open_submission(chat.user_id) is None
        and not await store.unsynced_submissions()
        and outbox is not None
        and not await outbox.has_open()
    )


async def _wait_settled(app: App, chat: LocalChat) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_TIMEOUT
    # A bounded poll on the condition: the work happens in the background tasks.
    while not await _settled(app, chat):
        if loop.time() > deadline:
            raise TimeoutError("the submission did not settle")
        await asyncio.sleep(POLL)


async def drive(args: argparse.Namespace) -> int:
    """Run the script against a fresh app on the given files."""
    settings = Settings(
        _env_file=None,
        database_path=args.db,
        consent_poll_seconds=0.5,
        flood_burst=0,
    )
    if settings.data_key is None:
        sys.exit("tests.crash.driver: DATA_KEY must be set (the next run reads this one's data)")
    actions = [json.loads(line) for line in args.script.read_text().splitlines() if line.strip()]
    session = LocalBotSession()
    with args.transcript.open("a", encoding="utf-8") as transcript:
        session.on_send(_transcribe(transcript, args.run))
        async with open_app(settings, session=session, start_sender=True) as app:
            chat = LocalChat(app.dp, app.bot, user_id=args.user, language_code=args.locale)
            journey = BackgroundJourney(
                app, chat, args.locale, phone_number=args.phone, child_iin=args.child
            )
            _say({"event": "started"})
            for index, action in enumerate(actions):
                if "stage" in action:
                    await getattr(journey, action["stage"])()
                elif "text" in action:
                    await journey.send(action["text"])
                elif "report" in action:
                    _say(await _report(app, chat))
                elif "wait" in action:
                    await _wait_settled(app, chat)
                    _say(await _report(app, chat))
                elif "hold" in action:
                    _say({"event": "held", "action": index})
                    await asyncio.Event().wait()
                elif "exit" in action:
                    break
                else:
                    raise ValueError(f"unknown action {action!r}")
                _say({"event": "done", "action": index})
    _say({"event": "exit"})
    return 0


def fork_server() -> int:
    """Serve run requests from stdin, one child process at a time, until stdin closes."""
    _say({"event": "ready"})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        sys.stdout.flush()  # nothing buffered may be written twice by the child
        pid = os.fork()
        if pid == 0:
            _child(request)
        _say({"event": "forked", "pid": pid})
        _, status = os.waitpid(pid, 0)
        _say({"event": "reaped", "pid": pid, "returncode": os.waitstatus_to_exitcode(status)})
    return 0


def _child(request: dict[str, Any]) -> None:
    """In the forked child: its own environment, stderr and stdin; run; never return."""
    code = 1
    try:
        os.environ.pop(FAILPOINT_ENV, None)
        os.environ.update(request.get("env") or {})
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 2)
        nothing = os.open(os.devnull, os.O_RDONLY)
        os.dup2(nothing, 0)
        code = main(request["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main(argv: list[str] | None = None) -> int:
    if (argv if argv is not None else sys.argv[1:]) == ["--fork-server"]:
        return fork_server()
    parser = argparse.ArgumentParser(prog="tests.crash.driver")
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--transcript", type=Path, required=True)
    parser.add_argument("--script", type=Path, required=True)
    parser.add_argument("--user", type=int, required=True)
    parser.add_argument("--phone", required=True)
    parser.add_argument("--child", required=True)
    parser.add_argument("--locale", default="kk")
    parser.add_argument("--run", default="1", help="a label for this run's transcript lines")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(drive(args))


if __name__ == "__main__":
    sys.exit(main())
