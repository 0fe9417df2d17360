"""SandboxConfig: defaults, environment variables, clear messages for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.voucher.sandbox import SandboxConfig, running_sandbox
from tests.sandbox.conftest import api_client
from tests.sandbox.helpers import CHILD_IIN, PARENT_IIN, login, problem


def test_defaults() -> None:
    config = SandboxConfig()
    assert config.token == "sandbox-token"
    assert config.db_path == Path("sandbox.sqlite3")
    assert (config.latency_ms, config.failure_rate, config.retry_after) == (0, 0.0, 1)
    assert config.intake_closed == [] and config.unknown_iins == set()
    assert config.consent_auto_answer_s is None
    assert config.age_bands == [(3, 6), (7, 10), (11, 14), (15, 18)]


def test_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "VOUCHER_API_TOKEN": "t0ken",
        "SANDBOX_DB": str(tmp_path / "x.sqlite3"),
        "SANDBOX_LATENCY_MS": "25",
        "SANDBOX_FAILURE_RATE": "0.25",
        "SANDBOX_RETRY_AFTER": "5",
        "SANDBOX_INTAKE_CLOSED": "special, general",
        "SANDBOX_CONSENT_AUTO_ANSWER_S": "3",
        "SANDBOX_AGE_BANDS": "7-12, 3-6,13-18",
        "SANDBOX_UNKNOWN_IINS": f"{PARENT_IIN},{CHILD_IIN}",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = SandboxConfig()
    assert config.token == "t0ken"
    assert config.db_path == tmp_path / "x.sqlite3"
    assert (config.latency_ms, config.failure_rate, config.retry_after) == (25, 0.25, 5)
    assert config.intake_closed == ["special", "general"]
    assert config.consent_auto_answer_s == 3
    assert config.age_bands == [(3, 6), (7, 12), (13, 18)]
    assert config.unknown_iins == {PARENT_IIN, CHILD_IIN}


def test_empty_auto_answer_means_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_CONSENT_AUTO_ANSWER_S", "")
    assert SandboxConfig().consent_auto_answer_s is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SANDBOX_FAILURE_RATE", "1.5", "less than or equal to 1"),
        ("SANDBOX_LATENCY_MS", "-3", "greater than or equal to 0"),
        ("SANDBOX_INTAKE_CLOSED", "general,vip", "'vip' is not a queue type"),
        ("SANDBOX_AGE_BANDS", "3-6,5-9", "overlaps"),
        ("SANDBOX_AGE_BANDS", "three-six", "is not a band like '7-10'"),
        ("SANDBOX_AGE_BANDS", "9-3", "0 <= min <= max"),
        ("SANDBOX_UNKNOWN_IINS", "123", "not a valid 12-digit IIN"),
        ("SANDBOX_CONSENT_AUTO_ANSWER_S", "soon", "valid integer"),
        ("VOUCHER_API_TOKEN", "", "at least 1 character"),
    ],
)
def test_bad_values_are_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        SandboxConfig()
    text = str(caught.value)
    assert name in text and message in text


async def test_environment_reaches_a_running_sandbox(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VOUCHER_API_TOKEN", "env-token")
    monkeypatch.setenv("SANDBOX_DB", str(tmp_path / "env.sqlite3"))
    monkeypatch.setenv("SANDBOX_FAILURE_RATE", "1")
    monkeypatch.setenv("SANDBOX_UNKNOWN_IINS", PARENT_IIN)
    async with running_sandbox(SandboxConfig()) as sandbox, api_client(sandbox) as client:
        assert sandbox.token == "env-token"
        problem(await client.get("/providers"), 503, "unavailable")
        await client.post("/sandbox/faults", json={"failure_rate": 0})
        session = await login(client)
        response = await client.post(
            "/consents", json={"iin": PARENT_IIN}, headers={"X-Session": session}
        )
        problem(response, 404, "person_not_found")
    assert (tmp_path / "env.sqlite3").exists()


def test_env_file_shared_with_the_bot(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "BOT_TOKEN=123:abc\nVOUCHER_API_TOKEN=from-file\nSANDBOX_INTAKE_CLOSED=\n"
        "SANDBOX_CONSENT_AUTO_ANSWER_S=\nSANDBOX_AGE_BANDS=3-9,10-18\n"
    )
    config = SandboxConfig(_env_file=env_file)  # type: ignore[call-arg]
    assert config.token == "from-file"
    assert config.intake_closed == [] and config.consent_auto_answer_s is None
    assert config.age_bands == [(3, 9), (10, 18)]
