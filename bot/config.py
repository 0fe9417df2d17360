"""Settings from the environment and `.env`, validated once at start."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SANDBOX = "sandbox"


class Settings(BaseSettings):
    """Every setting Kezek reads; `.env.example` documents each one."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: SecretStr | None = None
    telegram_api_url: str | None = None
    voucher_api_url: str | None = None
    voucher_api_token: SecretStr = SecretStr("sandbox-token")
    database_path: Path = Path("kezek.sqlite3")
    default_locale: Literal["kk", "ru"] = "kk"
    staff_chat_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    consent_poll_seconds: float = Field(default=5.0, gt=0, le=60)
    voucher_connect_timeout: float = Field(default=5.0, gt=0, le=60)
    voucher_read_timeout: float = Field(default=15.0, gt=0, le=300)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # After submission: the changes feed, and the service's optional signed pushes.
    status_poll_seconds: float = Field(default=30.0, gt=0, le=3600)
    voucher_webhook_secret: SecretStr | None = None
    events_host: str = "127.0.0.1"
    events_port: int = Field(default=8081, ge=0, le=65535)
    digest_cron: str = "0 9 * * *"

    @field_validator("staff_chat_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
            try:
                return [int(p) for p in parts]
            except ValueError:
                raise ValueError(
                    "STAFF_CHAT_IDS must be a comma-separated list of chat ids"
                ) from None
        return value

    @field_validator("telegram_api_url", "voucher_api_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("voucher_api_url")
    @classmethod
    def _url_or_sandbox(cls, value: str | None) -> str | None:
        if value is None or value == SANDBOX:
            return value
        if not value.startswith(("http://", "https://")):
            raise ValueError("VOUCHER_API_URL must be an http(s) URL or the word 'sandbox'")
        return value.rstrip("/")

    @field_validator("digest_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from services.jobs import crontab_trigger

        try:
            crontab_trigger(value)
        except ValueError as exc:
            raise ValueError(f"DIGEST_CRON is not a crontab expression: {exc}") from None
        return value

    @field_validator("voucher_webhook_secret", mode="before")
    @classmethod
    def _blank_secret_is_unset(cls, value: object) -> object:
        # An empty VOUCHER_WEBHOOK_SECRET= in .env means "no push route", not "sign with ''".
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def uses_sandbox(self) -> bool:
        return self.voucher_api_url == SANDBOX
