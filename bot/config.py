"""Settings from the environment and `.env`, validated once at start."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.crypto import DataCipher, InvalidKey, decode_key

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
    # The client's own pool (services/voucher/client.py): at most this many requests in flight;
    # a call that finds them all busy waits its turn this long, then "service unavailable".
    voucher_max_connections: int = Field(default=100, ge=1, le=10_000)
    voucher_pool_timeout: float = Field(default=120.0, gt=0, le=600)
    # How long the catalogue is reused for every parent: queue and state-order types, and
    # provider pages and groups (their free seats change more often). 0 = ask every time.
    voucher_catalog_ttl: float = Field(default=600.0, ge=0, le=86_400)
    voucher_listing_ttl: float = Field(default=60.0, ge=0, le=3600)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Python's collector (bot/gc_tuning.py): allocations between two young collections once
    # `run` has started; 0 = Python's defaults.
    gc_young_threshold: int = Field(default=50_000, ge=0, le=10_000_000)
    # After submission: the changes feed, and the service's optional signed pushes.
    status_poll_seconds: float = Field(default=30.0, gt=0, le=3600)
    voucher_webhook_secret: SecretStr | None = None
    events_host: str = "127.0.0.1"
    events_port: int = Field(default=8081, ge=0, le=65535)
    digest_cron: str = "0 9 * * *"
    # Webhook mode (`voucher-bot run --webhook`, bot/webhook_mode.py): Telegram POSTs updates
    # to WEBHOOK_URL + WEBHOOK_PATH with WEBHOOK_SECRET; the server listens on host:port.
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_host: str = "127.0.0.1"
    webhook_port: int = Field(default=8080, ge=0, le=65535)
    webhook_path: str = "/telegram/webhook"
    # Per-user flood limit (bot/abuse.py): FLOOD_BURST updates per FLOOD_SECONDS; 0 = off.
    flood_burst: int = Field(default=20, ge=0, le=10_000)
    flood_seconds: float = Field(default=10.0, gt=0, le=3600)
    # Personal data at rest (services/crypto.py): the key that seals, and retired keys that
    # still open what they sealed (comma-separated). Urlsafe base64 of 32 random bytes.
    data_key: SecretStr | None = None
    data_keys_old: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

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

    @field_validator("webhook_url", "webhook_secret", mode="before")
    @classmethod
    def _blank_webhook_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("WEBHOOK_URL must be the bot's public https:// base URL")
        return value.rstrip("/") if value else value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # Telegram's rule for secret_token; the message never repeats the secret.
        if value is not None and not re.fullmatch(
            r"[A-Za-z0-9_-]{16,256}", value.get_secret_value()
        ):
            raise ValueError("WEBHOOK_SECRET must be 16-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("webhook_path")
    @classmethod
    def _webhook_path(cls, value: str) -> str:
        if not re.fullmatch(r"/[A-Za-z0-9_\-./]*", value) or value == "/healthz":
            raise ValueError("WEBHOOK_PATH must be a URL path such as /telegram/webhook")
        return value

    @field_validator("data_key", mode="before")
    @classmethod
    def _blank_key_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("data_key")
    @classmethod
    def _key_decodes(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                decode_key(value.get_secret_value())
            except InvalidKey as exc:  # the message never repeats the key itself
                raise ValueError(f"DATA_KEY {exc}") from None
        return value

    @field_validator("data_keys_old", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("data_keys_old")
    @classmethod
    def _old_keys_decode(cls, value: list[SecretStr]) -> list[SecretStr]:
        for number, key in enumerate(value, start=1):
            try:
                decode_key(key.get_secret_value())
            except InvalidKey as exc:
                raise ValueError(f"DATA_KEYS_OLD key {number} {exc}") from None
        return value

    def data_cipher(self) -> DataCipher | None:
        """The cipher of DATA_KEY (+ DATA_KEYS_OLD), or None when DATA_KEY is not set."""
        if self.data_key is None:
            return None
        return DataCipher.from_keys(
            self.data_key.get_secret_value(), [k.get_secret_value() for k in self.data_keys_old]
        )

    @property
    def uses_sandbox(self) -> bool:
        return self.voucher_api_url == SANDBOX
