"""Settings: what an operator sees when a setting is missing or wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from settings import Mode, Settings, describe_error

# Settings only; the bot exits before it opens a database: no PostgreSQL or Redis,
# so only the SQLite pass runs these (no_services, see tasks.py).
pytestmark = pytest.mark.no_services

ROOT = Path(__file__).resolve().parents[2]
FAKE_TOKEN = "123456:TEST-FAKE-TOKEN-aaaaaaaaaaaaaaaaaaaaaaaaaa"


def run_bot(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env}
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py")],
        cwd=tmp_path,  # no .env from the developer's checkout
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_missing_token_exits_2_with_one_clear_line(tmp_path: Path) -> None:
    result = run_bot({}, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "BOT_TOKEN" in lines[0]
    assert "@BotFather" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_malformed_token_is_not_echoed(tmp_path: Path) -> None:
    secretish = "not-a-token-but-secret-looking-123"
    result = run_bot({"BOT_TOKEN": secretish}, tmp_path)
    assert result.returncode == 2
    assert "BOT_TOKEN" in result.stderr
    assert secretish not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_invalid_values_name_the_setting_and_expectation() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(BOT_TOKEN=FAKE_TOKEN, WEBHOOK_PORT="seventy", DATABASE_URL="mysql://x/y")
    text = describe_error(caught.value)
    assert "Setting WEBHOOK_PORT is invalid: expected a TCP port 1..65535." in text
    assert "Setting DATABASE_URL is invalid" in text
    assert "seventy" not in text


def test_webhook_mode_requires_secret() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(
            BOT_TOKEN=FAKE_TOKEN,
            MODE=Mode.WEBHOOK,
            WEBHOOK_URL="https://bot.example/hook",
        )
    assert "WEBHOOK_SECRET" in describe_error(caught.value)


def test_webhook_secret_telegram_would_refuse_is_one_line_without_its_value() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(
            BOT_TOKEN=FAKE_TOKEN,
            MODE=Mode.WEBHOOK,
            WEBHOOK_URL="https://bot.example/hook",
            WEBHOOK_SECRET="not allowed: spaces!",
        )
    text = describe_error(caught.value)
    assert text.startswith("Setting WEBHOOK_SECRET is invalid: expected a secret token")
    assert "\n" not in text and "spaces" not in text


def test_defaults_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "TELEGRAM_API_URL", "MODE", "BILLING_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(BOT_TOKEN=FAKE_TOKEN)
    assert settings.TELEGRAM_API_URL == "https://api.telegram.org"
    assert settings.DATABASE_URL == "sqlite+aiosqlite:///data/bot.db"
    assert settings.MODE is Mode.POLLING
    assert settings.BILLING_URL is None
    assert settings.JUMP_LIMIT == 3000
    assert (settings.WINDOW_START_DAY, settings.WINDOW_END_DAY) == (23, 25)
    assert "BOT_TOKEN" not in repr(settings) or FAKE_TOKEN not in repr(settings)


def test_a_bad_redis_url_is_named() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(BOT_TOKEN=FAKE_TOKEN, REDIS_URL="localhost:6379")
    assert "Setting REDIS_URL is invalid: expected a redis://" in describe_error(caught.value)
    assert Settings(BOT_TOKEN=FAKE_TOKEN, REDIS_URL="").REDIS_URL is None
