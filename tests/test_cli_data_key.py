"""`voucher-bot keygen` prints a usable key; `voucher-bot run` will not start without one.

In-process (the CLI's import alone takes seconds): `main` configures logging, so the fixture
puts the root logger back as it was.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.__main__ import _run, main
from services.crypto import KEY_BYTES, DataCipher, decode_key, generate_key
from services.logmask import PersonalDataFilter


@pytest.fixture
def logging_restored() -> Iterator[None]:
    root, quiet = logging.getLogger(), logging.getLogger("aiosqlite")
    handlers, level, quiet_level = list(root.handlers), root.level, quiet.level
    filters = {h: list(h.filters) for h in handlers}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler, kept in filters.items():
        handler.filters[:] = kept
    root.setLevel(level)
    quiet.setLevel(quiet_level)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.chdir(tmp_path)  # a folder without .env: only what the test sets
    for name in ("DATA_KEY", "DATA_KEYS_OLD", "BOT_TOKEN", "VOUCHER_API_URL", "DATABASE_PATH"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_keygen_prints_a_fresh_32_byte_key_and_logs_are_masked_from_then_on(
    capsys: pytest.CaptureFixture[str], logging_restored: None, clean_env: Path
) -> None:
    assert main(["keygen"]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["keygen"]) == 0
    second = capsys.readouterr().out.strip()
    assert first != second
    assert len(decode_key(first)) == KEY_BYTES and len(decode_key(second)) == KEY_BYTES
    DataCipher.from_keys(first, [second])  # both are keys the settings accept
    handlers = logging.getLogger().handlers
    assert handlers and all(
        any(isinstance(f, PersonalDataFilter) for f in h.filters) for h in handlers
    )


async def test_run_refuses_to_start_without_data_key_and_with_a_bad_one(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    monkeypatch.setenv("BOT_TOKEN", "123456:TEST")
    monkeypatch.setenv("VOUCHER_API_URL", "sandbox")
    with pytest.raises(SystemExit) as missing:
        await _run()
    assert "DATA_KEY is not set" in str(missing.value.code)
    assert "voucher-bot keygen" in str(missing.value.code)

    bad_key = generate_key()[:20]
    monkeypatch.setenv("DATA_KEY", bad_key)
    with pytest.raises(SystemExit) as bad:
        await _run()
    assert "DATA_KEY" in str(bad.value.code) and bad_key not in str(bad.value.code)
    assert await asyncio.to_thread(os.listdir, clean_env) == []  # refused before any file
