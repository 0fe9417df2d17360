"""Real processes for the SIGKILL tests: the sandbox, and the bot through tests/crash/driver.py.

Per test module: one sandbox (`python -m bot sandbox --port 0`, its state in a file, so it
outlives every bot process) and one fork server of the driver (aiogram imported once; each run
is a fresh forked process). Per scenario: a parent of its own (user id, phone, child IIN), so
the sandbox's per-phone limits and duplicate checks never meet another scenario, and its own
database and transcript files, which every run of the scenario shares.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.crypto import generate_key
from services.failpoints import ENV as FAILPOINT_ENV
from services.validation import iin_check_digit

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "sandbox-token"
START_TIMEOUT = 30.0
RUN_TIMEOUT = 60.0


class Lines:
    """JSON lines from a pipe, read with a deadline (never a blocking read without one)."""

    def __init__(self, stream: Any) -> None:
        self._fd = stream.fileno()
        self._buffer = bytearray()

    def next(self, timeout: float) -> dict[str, Any]:
        """The next JSON line; AssertionError when none comes in time or the pipe ends."""
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([self._fd], [], [], timeout)
            if not ready:
                raise AssertionError(f"no line from the process within {timeout} s")
            chunk = os.read(self._fd, 65536)
            if not chunk:
                raise AssertionError("the process closed its output")
            self._buffer += chunk
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        decoded: dict[str, Any] = json.loads(line)
        return decoded


@dataclass
class Parent:
    """One scenario's parent and the files every run of that scenario shares."""

    user: int
    phone: str
    child: str
    folder: Path

    @property
    def db(self) -> Path:
        return self.folder / "kezek.sqlite3"

    @property
    def transcript(self) -> Path:
        return self.folder / "transcript.jsonl"

    def said(self) -> list[dict[str, Any]]:
        """Every message the parent was shown, across all runs."""
        if not self.transcript.exists():
            return []
        lines = self.transcript.read_text(encoding="utf-8").splitlines()
        return [m for m in map(json.loads, lines) if m["chat_id"] == self.user]


@dataclass
class Run:
    """What one driver process did: its exit code and the JSON lines it wrote."""

    returncode: int
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def reports(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == "report"]

    def done(self, action: int) -> bool:
        return {"event": "done", "action": action} in self.events


class Bots:
    """Starts driver runs through the fork server, one at a time."""

    def __init__(self, server: subprocess.Popen[bytes], lines: Lines, folder: Path) -> None:
        self._server = server
        self._lines = lines
        self._folder = folder
        self._runs = itertools.count(1)

    def run(
        self,
        parent: Parent,
        actions: list[dict[str, Any]],
        *,
        failpoint: str | None = None,
        kill_when_held: bool = False,
    ) -> Run:
        """Run the driver on `parent`'s files; SIGKILL it from here once it holds, if asked."""
        number = next(self._runs)
        script = self._folder / f"script-{number}.jsonl"
        script.write_text("".join(json.dumps(a) + "\n" for a in actions))
        argv = [
            *("--db", str(parent.db), "--transcript", str(parent.transcript)),
            *("--script", str(script), "--user", str(parent.user)),
            *("--phone", parent.phone, "--child", parent.child, "--run", str(number)),
        ]
        env = {FAILPOINT_ENV: failpoint} if failpoint else {}
        request = {"argv": argv, "env": env, "log": str(self._folder / f"run-{number}.log")}
        assert self._server.stdin is not None
        self._server.stdin.write((json.dumps(request) + "\n").encode())
        self._server.stdin.flush()
        forked = self._lines.next(START_TIMEOUT)
        assert forked["event"] == "forked", forked
        events: list[dict[str, Any]] = []
        while True:
            try:
                event = self._lines.next(RUN_TIMEOUT)
            except AssertionError:
                os.kill(forked["pid"], signal.SIGKILL)  # never leave a hung bot behind
                raise
            if event.get("event") == "reaped":
                return Run(event["returncode"], events)
            events.append(event)
            if event.get("event") == "held" and kill_when_held:
                os.kill(forked["pid"], signal.SIGKILL)


def _iin(born: str, serial: int) -> str:
    """A valid IIN of a boy born on `born` (YYMMDD) in the 2000s."""
    for n in range(serial, serial + 200):
        first11 = f"{born}5{n:04d}"
        check = iin_check_digit(first11)
        if check is not None:
            return first11 + str(check)
    raise AssertionError("no IIN")


@pytest.fixture(scope="module")
def crash_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("crash")


@pytest.fixture(scope="module")
def sandbox_url(crash_dir: Path) -> Iterator[str]:
    """The sandbox as a process of its own, on a free port it picks and prints."""
    env = {**os.environ, "VOUCHER_API_TOKEN": TOKEN}
    env.pop("SANDBOX_FAILURE_RATE", None)
    sandbox_db = crash_dir / "sandbox.sqlite3"
    with (crash_dir / "sandbox.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "sandbox", "--port", "0", "--db", str(sandbox_db)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    try:
        assert process.stdout is not None
        fd = process.stdout.fileno()
        banner = b""
        while b"\n" not in banner:
            ready, _, _ = select.select([fd], [], [], START_TIMEOUT)
            chunk = os.read(fd, 4096) if ready else b""
            assert chunk, f"the sandbox did not start; see {crash_dir / 'sandbox.log'}"
            banner += chunk
        yield banner.decode().split("Voucher sandbox on ", 1)[1].split(";", 1)[0]
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def bots(sandbox_url: str, crash_dir: Path) -> Iterator[Bots]:
    """The driver's fork server, pointed at the sandbox, with one DATA_KEY for every run."""
    env = {
        **os.environ,
        "VOUCHER_API_URL": sandbox_url,
        "VOUCHER_API_TOKEN": TOKEN,
        "DATA_KEY": generate_key(),
    }
    env.pop(FAILPOINT_ENV, None)
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.crash.driver", "--fork-server"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        lines = Lines(server.stdout)
        assert lines.next(START_TIMEOUT) == {"event": "ready"}
        yield Bots(server, lines, crash_dir)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def parents(crash_dir: Path) -> Iterator[Any]:
    """A new parent for each scenario: own user id, phone, child and folder."""
    numbers = itertools.count(1)

    def make() -> Parent:
        n = next(numbers)
        folder = crash_dir / f"parent-{n}"
        folder.mkdir()
        # Boys born in March 2016 (10 on 1 September 2026), one a day; registered phones.
        return Parent(7000 + n, f"+770155{n:05d}", _iin(f"1603{n:02d}", 1), folder)

    yield make


def applications_of(sandbox_url: str, child: str) -> list[dict[str, Any]]:
    """The sandbox's applications for this child (GET /sandbox/applications)."""
    response = httpx.get(
        f"{sandbox_url}/sandbox/applications",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    response.raise_for_status()
    return [a for a in response.json() if a["body"]["child"]["iin"] == child]
