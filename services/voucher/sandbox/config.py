"""Settings of the voucher-service sandbox, read from the environment (see docs/sandbox.md)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.validation import is_valid_iin

QUEUE_TYPE_CODES: tuple[str, ...] = ("general", "special")
DEFAULT_AGE_BANDS = "3-6,7-10,11-14,15-18"
_BAND = re.compile(r"([0-9]{1,2})\s*-\s*([0-9]{1,2})")


def _comma_list(value: Any) -> Any:
    """`"a, b,,c"` → `["a", "b", "c"]`; anything else is left for pydantic to judge."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def parse_age_bands(value: Any) -> list[tuple[int, int]]:
    """`"3-6,7-10"` (or a list of pairs) → sorted, non-overlapping `[(3, 6), (7, 10)]`."""
    items = _comma_list(value)
    if not isinstance(items, list | tuple) or not items:
        raise ValueError(f"SANDBOX_AGE_BANDS must list bands like {DEFAULT_AGE_BANDS!r}")
    bands: list[tuple[int, int]] = []
    for item in items:
        if isinstance(item, str):
            match = _BAND.fullmatch(item.strip())
            if match is None:
                raise ValueError(f"SANDBOX_AGE_BANDS: {item!r} is not a band like '7-10'")
            low, high = int(match[1]), int(match[2])
        else:
            try:
                low, high = (int(bound) for bound in item)
            except (TypeError, ValueError):
                raise ValueError(f"SANDBOX_AGE_BANDS: {item!r} is not a (min, max) pair") from None
        if not 0 <= low <= high <= 30:
            raise ValueError(
                f"SANDBOX_AGE_BANDS: band {low}-{high} must satisfy 0 <= min <= max <= 30"
            )
        bands.append((low, high))
    bands.sort()
    for (_, prev_high), (low, high) in itertools.pairwise(bands):
        if low <= prev_high:
            raise ValueError(f"SANDBOX_AGE_BANDS: band {low}-{high} overlaps the previous one")
    return bands


class SandboxConfig(BaseSettings):
    """Everything the sandbox can be told at start; the fault switches can change later."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    token: str = Field("sandbox-token", validation_alias="VOUCHER_API_TOKEN", min_length=1)
    db_path: Path = Field(Path("sandbox.sqlite3"), validation_alias="SANDBOX_DB")
    latency_ms: int = Field(0, validation_alias="SANDBOX_LATENCY_MS", ge=0, le=600_000)
    failure_rate: float = Field(0.0, validation_alias="SANDBOX_FAILURE_RATE", ge=0.0, le=1.0)
    retry_after: int = Field(1, validation_alias="SANDBOX_RETRY_AFTER", ge=0, le=3600)
    intake_closed: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="SANDBOX_INTAKE_CLOSED"
    )
    consent_auto_answer_s: int | None = Field(
        None, validation_alias="SANDBOX_CONSENT_AUTO_ANSWER_S", ge=0, le=3600
    )
    age_bands: Annotated[list[tuple[int, int]], NoDecode] = Field(
        default_factory=lambda: parse_age_bands(DEFAULT_AGE_BANDS),
        validation_alias="SANDBOX_AGE_BANDS",
    )
    unknown_iins: Annotated[set[str], NoDecode] = Field(
        default_factory=set, validation_alias="SANDBOX_UNKNOWN_IINS"
    )

    @field_validator("token")
    @classmethod
    def _token_is_printable(cls, value: str) -> str:
        if value != value.strip() or not value.isprintable():
            raise ValueError(
                "VOUCHER_API_TOKEN must not have spaces around it or control characters"
            )
        return value

    @field_validator("intake_closed", mode="before")
    @classmethod
    def _intake_closed(cls, value: Any) -> Any:
        items = _comma_list(value)
        for item in items if isinstance(items, list | tuple | set) else ():
            if item not in QUEUE_TYPE_CODES:
                raise ValueError(
                    f"SANDBOX_INTAKE_CLOSED: {item!r} is not a queue type "
                    f"(use {', '.join(QUEUE_TYPE_CODES)})"
                )
        return items

    @field_validator("consent_auto_answer_s", mode="before")
    @classmethod
    def _auto_answer(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in {"", "none", "null", "off"}:
            return None
        return value

    @field_validator("age_bands", mode="before")
    @classmethod
    def _age_bands(cls, value: Any) -> list[tuple[int, int]]:
        return parse_age_bands(value)

    @field_validator("unknown_iins", mode="before")
    @classmethod
    def _unknown_iins(cls, value: Any) -> Any:
        items = _comma_list(value)
        for item in items if isinstance(items, list | tuple | set) else ():
            if not isinstance(item, str) or not is_valid_iin(item):
                raise ValueError(f"SANDBOX_UNKNOWN_IINS: {item!r} is not a valid 12-digit IIN")
        return items
