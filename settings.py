"""The bot's settings: environment variables and an optional `.env` file.

The names are part of the product's interface (README, `.env.example`, operators'
deployments). A bad value stops the bot with one line naming the setting and what
is expected; a secret's value is never echoed.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BOT_TOKEN_RE = re.compile(r"^\d{5,20}:[A-Za-z0-9_-]{30,64}$")
# What Telegram accepts as setWebhook's secret_token.
WEBHOOK_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class Mode(StrEnum):
    POLLING = "polling"
    WEBHOOK = "webhook"


_CONFIG = SettingsConfigDict(
    env_file=".env",
    env_file_encoding="utf-8",
    extra="ignore",
    case_sensitive=True,
)


class BillingSettings(BaseSettings):
    """What billing_client needs; `python -m billing_client` reads only these."""

    model_config = _CONFIG

    DATA_DIR: Path = Path("data")
    BILLING_URL: str | None = None
    BILLING_DATABASE_URL: str = "sqlite+aiosqlite:///data/billing.db"
    BILLING_CONNECT_TIMEOUT: Annotated[float, Field(gt=0, le=120)] = 5.0
    BILLING_TIMEOUT: Annotated[float, Field(gt=0, le=600)] = 20.0
    BILLING_RETRIES: Annotated[int, Field(ge=0, le=10)] = 3
    BILLING_DEMO: bool = True
    BILLING_ACCEPT_FROM_DAY: Annotated[int, Field(ge=1, le=31)] | None = None
    BILLING_ACCEPT_TO_DAY: Annotated[int, Field(ge=1, le=31)] | None = None
    DEFAULT_CITY: str = "Новосибирск"
    TIMEZONE: str = "Asia/Novosibirsk"
    LOG_LEVEL: str = "INFO"

    @field_validator("LOG_LEVEL")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("bad level")
        return level

    @field_validator("TIMEZONE")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("unknown zone") from exc
        return value

    @field_validator("BILLING_DATABASE_URL")
    @classmethod
    def _billing_db_url(cls, value: str) -> str:
        return _check_db_url(value)

    @field_validator("BILLING_URL")
    @classmethod
    def _billing_url(cls, value: str | None) -> str | None:
        return _check_http_url(value)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.TIMEZONE)


def _check_db_url(value: str) -> str:
    if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ValueError("unsupported driver")
    return value


def _check_http_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not value.startswith(("http://", "https://")):
        raise ValueError("not an http(s) URL")
    return value.rstrip("/")


class Settings(BillingSettings):
    """Every setting of the bot, read from the environment (and `.env`)."""

    # Telegram
    BOT_TOKEN: SecretStr
    TELEGRAM_API_URL: str = "https://api.telegram.org"
    MODE: Mode = Mode.POLLING
    WEBHOOK_URL: str | None = None
    WEBHOOK_SECRET: SecretStr | None = None
    WEBHOOK_HOST: str = "0.0.0.0"
    WEBHOOK_PORT: Annotated[int, Field(ge=1, le=65535)] = 8080
    # /healthz, /readyz and /metrics on a port of their own (off when unset);
    # in webhook mode they are on the webhook server as well.
    METRICS_HOST: str = "127.0.0.1"
    METRICS_PORT: Annotated[int, Field(ge=1, le=65535)] | None = None

    # Storage
    DATABASE_URL: str = "sqlite+aiosqlite:///data/bot.db"
    REDIS_URL: str | None = None
    SECRET_KEY: SecretStr | None = None

    # The product
    SUPERVISOR_CHAT_ID: int | None = None
    JUMP_LIMIT: Annotated[int, Field(ge=1)] = 3000
    WINDOW_START_DAY: Annotated[int, Field(ge=1, le=31)] = 23
    WINDOW_END_DAY: Annotated[int, Field(ge=1, le=31)] = 25
    DIGEST_ENABLED: bool = False
    DIGEST_HOUR: Annotated[int, Field(ge=0, le=23)] = 9
    INVITE_TTL_DAYS: Annotated[int, Field(ge=1, le=365)] = 7

    # Sending to billing (the outbox worker, see README «Reliability»)
    SEND_WAIT: Annotated[float, Field(ge=0, le=60)] = 5.0
    OUTBOX_RETRY_BASE: Annotated[float, Field(gt=0, le=3600)] = 5.0
    OUTBOX_RETRY_MAX: Annotated[float, Field(gt=0, le=86400)] = 600.0
    OUTBOX_GIVE_UP_HOURS: Annotated[float, Field(gt=0, le=24 * 30)] = 24.0
    OUTBOX_LEASE: Annotated[float, Field(ge=1, le=3600)] = 60.0
    OUTBOX_CONCURRENCY: Annotated[int, Field(ge=1, le=64)] = 4
    BILLING_BREAKER_FAILURES: Annotated[int, Field(ge=1, le=1000)] = 5
    BILLING_BREAKER_COOLDOWN: Annotated[float, Field(gt=0, le=3600)] = 30.0

    @field_validator("BOT_TOKEN")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        if not BOT_TOKEN_RE.match(value.get_secret_value().strip()):
            raise ValueError("malformed")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("DATABASE_URL")
    @classmethod
    def _db_url(cls, value: str) -> str:
        return _check_db_url(value)

    @field_validator("WEBHOOK_SECRET")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        secret = value.get_secret_value() if value is not None else ""
        if secret and not WEBHOOK_SECRET_RE.match(secret):
            raise ValueError("unallowed characters")
        return value

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("not a redis URL")
        return value

    @field_validator("TELEGRAM_API_URL", "WEBHOOK_URL")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return _check_http_url(value)

    @model_validator(mode="after")
    def _webhook_needs(self) -> Settings:
        if self.MODE is Mode.WEBHOOK:
            if not self.WEBHOOK_URL:
                raise ValueError("WEBHOOK_URL")
            if self.WEBHOOK_SECRET is None or not self.WEBHOOK_SECRET.get_secret_value():
                raise ValueError("WEBHOOK_SECRET")
        return self


EXPECTED: dict[str, str] = {
    "BOT_TOKEN": (
        "a bot token like 123456789:AAE...; get one from @BotFather in Telegram "
        "(/newbot) and set BOT_TOKEN"
    ),
    "TELEGRAM_API_URL": "an http(s) URL of a Bot API server",
    "MODE": "'polling' or 'webhook'",
    "WEBHOOK_URL": "the public https URL Telegram should call (required with MODE=webhook)",
    "WEBHOOK_SECRET": (
        "a secret token of 1-256 characters A-Z, a-z, 0-9, _ and - (required with MODE=webhook)"
    ),
    "WEBHOOK_PORT": "a TCP port 1..65535",
    "METRICS_PORT": "a TCP port 1..65535, or unset to not serve /metrics on its own port",
    "DATABASE_URL": "a sqlite+aiosqlite:/// or postgresql+asyncpg:// URL",
    "BILLING_DATABASE_URL": "a sqlite+aiosqlite:/// or postgresql+asyncpg:// URL",
    "REDIS_URL": "a redis://host:port/db URL (rediss:// for TLS), or unset",
    "BILLING_URL": "an http(s) URL of a billing API v1, or unset for the embedded billing",
    "LOG_LEVEL": "one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
    "TIMEZONE": "an IANA time zone such as Asia/Novosibirsk",
    "SUPERVISOR_CHAT_ID": "an integer Telegram chat id, e.g. -1001234567890",
}


def describe_error(exc: ValidationError) -> str:
    """One line per bad setting, naming it and what is expected, never its value."""
    lines: list[str] = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = [str(part) for part in error.get("loc", ())]
        name = loc[0] if loc else ""
        if not name:
            # model-level validators put the missing setting's name into the message
            message = str(error.get("msg", ""))
            name = message.rsplit(" ", 1)[-1]
        if error.get("type") == "missing":
            what = EXPECTED.get(name, "a value")
            lines.append(f"Setting {name} is missing: expected {what}.")
            continue
        what = EXPECTED.get(name) or _expected_from_type(error)
        lines.append(f"Setting {name} is invalid: expected {what}.")
    return "\n".join(dict.fromkeys(lines))


def _expected_from_type(error: Any) -> str:
    kind = str(error.get("type", ""))
    if kind.startswith("int") or kind.startswith("greater") or kind.startswith("less"):
        ctx = error.get("ctx") or {}
        bounds = ", ".join(f"{k} {v}" for k, v in ctx.items())
        return f"an integer ({bounds})" if bounds else "an integer"
    if kind.startswith("float"):
        return "a number"
    if kind.startswith("bool"):
        return "true or false"
    return "a valid value"


def load_settings(**overrides: Any) -> Settings:
    """Read the settings; raises ValidationError (see describe_error)."""
    return Settings(**overrides)
