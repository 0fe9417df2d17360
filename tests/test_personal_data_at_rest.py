"""A whole application through the real bot, then a search of everything it left behind.

The parent goes from /start to the application number (tests/conversation/journey.py) with
every log record captured at DEBUG, from every logger and with no masking filter: what is
tested is that the code never writes personal data in clear, not that the filter hides it.
Then the bot's database file, its `-wal` and `-shm` files (while the bot runs, and again after
it closed) and every log line are searched for the IINs, the phone in each way people write
it, the parent's and the child's names, addresses and birth certificate, and the ed24 session.

The sandbox's own database is the voucher service's record, not the bot's: it is left out of
the search — and serves as the check that the search finds what is there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import App, open_app
from bot.config import Settings
from bot.local_chat import LocalChat
from bot.local_session import LocalBotSession
from services.clock import FakeClock
from services.crypto import generate_key
from services.voucher.models import StatusChange
from services.voucher.sandbox import SandboxConfig
from services.voucher.sandbox.context import STATE
from tests.conversation.journey import CHILD_IIN, PHONE, Journey
from tests.conversation.seed import PARENT_IIN

USER_ID = 5150


class Recorder(logging.Handler):
    """Every record, formatted with its traceback, as the operator's log file would hold it."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.records: list[tuple[str, int | None, str]] = []
        self.levels: set[int] = set()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.thread, self.format(record)))
        self.levels.add(record.levelno)

    def lines(self, *, except_thread: int | None) -> list[str]:
        """The lines, less aiosqlite's debug lines about the connection run by that thread."""
        return [
            text
            for name, thread, text in self.records
            if not (name == "aiosqlite" and thread == except_thread)
        ]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    root = logging.getLogger()
    handler = Recorder()
    # Loggers that tests or the CLI may have quietened log everything again for this test.
    quiet = {
        name: logger.level
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and logger.level > logging.DEBUG
    }
    level = root.level
    root.setLevel(logging.DEBUG)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.NOTSET)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for name, old in quiet.items():
            logging.getLogger(name).setLevel(old)


def _files(db: Path) -> dict[str, bytes]:
    found = {}
    for suffix in ("", "-wal", "-shm"):
        path = db.with_name(db.name + suffix)
        if path.exists():
            found[path.name] = path.read_bytes()
    return found


def _phone_forms(phone: str) -> list[str]:
    digits = phone.lstrip("+")  # 77017771122
    rest = digits[1:]  # 7017771122
    spaced = f"{rest[:3]} {rest[3:6]} {rest[6:8]} {rest[8:]}"
    return [phone, digits, "8" + rest, "+7 " + spaced, "8 " + spaced, "+7 (" + rest[:3] + ")"]


def _person_secrets(person: dict[str, Any]) -> list[str]:
    found = [person["iin"], person["last_name"], person["first_name"]]
    if person.get("middle_name"):
        found.append(person["middle_name"])
    addresses = person.get("addresses") or {}
    found += [a for a in (addresses.get("permanent"), addresses.get("temporary")) if a]
    certificate = person.get("birth_certificate") or {}
    if certificate.get("number"):
        found.append(certificate["number"])
    return found


def _encodings(secret: str) -> list[bytes]:
    # As SQLite stores text (UTF-8), and as json.dumps writes it by default (\\u escapes).
    forms = {secret.encode("utf-8"), json.dumps(secret).strip('"').encode("ascii")}
    return sorted(forms)


def _leaks(secrets: list[str], blobs: dict[str, bytes]) -> list[str]:
    return [
        f"{secret!r} in {where}"
        for secret in secrets
        for where, blob in blobs.items()
        if any(form in blob for form in _encodings(secret))
    ]


async def test_no_iin_phone_name_or_session_in_clear_in_the_database_or_the_logs(
    tmp_path: Path, recorder: Recorder
) -> None:
    settings = Settings(
        _env_file=None,
        voucher_api_url="sandbox",
        database_path=tmp_path / "kezek.sqlite3",
        consent_poll_seconds=0.02,
        data_key=generate_key(),
        flood_burst=0,  # the journey's taps come faster than a person's (the clock is fake)
    )
    sandbox_db = tmp_path / "sandbox.sqlite3"
    sandbox = SandboxConfig(token="sandbox-token", db_path=sandbox_db)
    delays: list[float] = []

    async def no_wait(delay: float) -> None:
        delays.append(delay)

    async with open_app(
        settings,
        clock=FakeClock(),
        session=LocalBotSession(),
        sandbox_config=sandbox,
        voucher_options={"sleep": no_wait},
    ) as app:
        # A Telegram profile name that is not the sandbox person's: only the latter is looked for.
        chat = LocalChat(app.dp, app.bot, user_id=USER_ID, language_code="ru", first_name="Tester")
        sandbox_thread = _sandbox_db_thread(app)
        journey = Journey(app, chat, "ru")
        await journey.run()
        draft = await app.services.store.get_draft(USER_ID)
        assert draft["application"]["number"], "the journey must end in a submitted application"
        applications = await app.services.store.list_applications(USER_ID)
        assert [a.number for a in applications] == [draft["application"]["number"]]
        await _push_a_status_change(app, applications[0].id, draft["child"]["first_name"])
        while_running = _files(settings.database_path)

    after_close = _files(settings.database_path)
    secrets = [
        PARENT_IIN,
        CHILD_IIN,
        *_phone_forms(PHONE),
        *_person_secrets(draft["parent"]),
        *_person_secrets(draft["child"]),
        draft["session"],
    ]
    assert draft["parent"]["iin"] == PARENT_IIN and draft["child"]["iin"] == CHILD_IIN
    assert draft["phone"] == PHONE

    # The search works: the voucher service's own file (not ours) holds the IINs in clear.
    assert _leaks([PARENT_IIN, CHILD_IIN], {"sandbox": sandbox_db.read_bytes()})
    assert "kezek.sqlite3-wal" in while_running  # WAL mode: the WAL really was searched
    # aiosqlite logs each statement with its values at DEBUG: those of the sandbox's own
    # connection are the voucher service's (its own process in production), not the bot's.
    lines = recorder.lines(except_thread=sandbox_thread)
    assert len(lines) > 100 and logging.DEBUG in recorder.levels
    assert any("fsm_records" in line for line in lines)  # the bot's own statements are in

    blobs = {f"{name} (running)": data for name, data in while_running.items()}
    blobs |= {f"{name} (closed)": data for name, data in after_close.items()}
    assert _leaks(secrets, blobs) == []
    log_text = {f"log line {i}: {line[:160]}": line.encode() for i, line in enumerate(lines)}
    assert _leaks(secrets, log_text) == []


def _sandbox_db_thread(app: App) -> int | None:
    """The worker thread of the sandbox's aiosqlite connection (the voucher service's record)."""
    assert app.sandbox is not None
    connection = app.sandbox.app[STATE].db.conn
    return connection._thread.ident


async def _push_a_status_change(app: App, application_id: str, first_name: str) -> None:
    """The queue moves: a push naming the child waits in the outbox, part of the search too."""
    await app.services.voucher.sandbox_set_status(
        application_id, StatusChange(status="registered", queue_position=7)
    )
    assert app.status_desk is not None
    await app.status_desk.poll()
    outbox = app.services.outbox
    assert outbox is not None
    waiting = await outbox.due(app.services.clock.now(), 10)
    assert any(first_name in m.text for m in waiting), "the push must name the child"
