"""pytest fixtures for end-to-end tests; register with, in tests/conftest.py:

    pytest_plugins = ["tests.harness.fixtures"]

Fixtures:
    bot_token      the fake token (BOT_TOKEN)
    fake_telegram  a started FakeTelegram, closed after the test
    bot_env        environment for `python bot.py` against it, data in tmp_path (and its
                   own PostgreSQL databases and Redis when the suite runs on them)
    databases      the URLs of a test's databases (tests/harness/databases.py)
    database_templates  this worker's migrated databases, copied by the `app` fixture
    start_bot      factory: `bot = await start_bot()` starts bot.py, waits until it polls,
                   and stops it after the test (its log is printed when the test fails)
"""

# Every wait takes its own timeout: a test states its time budget where it waits.
# ruff: noqa: ASYNC109

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from .databases import Databases
from .databases import database_templates as database_templates  # fixtures, registered
from .databases import databases as databases  # with this plugin
from .fake_telegram import BOT_TOKEN, BOT_USERNAME, FakeTelegram
from .process import BotProcess, StartBot


@pytest.fixture
def bot_token() -> str:
    return BOT_TOKEN


@pytest.fixture
async def fake_telegram(bot_token: str) -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(bot_token=bot_token, bot_username=BOT_USERNAME) as tg:
        yield tg


@pytest.fixture
def bot_env(
    fake_telegram: FakeTelegram, bot_token: str, tmp_path: Path, databases: Databases
) -> dict[str, str]:
    """Settings for one bot process: the fake API, and every file under tmp_path."""
    return {
        "BOT_TOKEN": bot_token,
        "TELEGRAM_API_URL": fake_telegram.api_url,
        "DATA_DIR": str(tmp_path / "data"),
        **databases.settings(),
        "LOG_LEVEL": "DEBUG",
        "MODE": "polling",
    }


@pytest.fixture
async def start_bot(
    bot_env: dict[str, str],
    fake_telegram: FakeTelegram,
    tmp_path: Path,
) -> AsyncIterator[StartBot]:
    """`await start_bot(env={...}, ready="getUpdates")` -> a running BotProcess.

    ready: the API call that means the bot is up ("setWebhook" in webhook mode, None to
    not wait; timeout is generous because importing aiogram alone can take seconds on a
    loaded CI machine). Each start gets its own log file in tmp_path; all are stopped at
    teardown.
    """
    started: list[BotProcess] = []

    async def start(
        *,
        env: dict[str, str] | None = None,
        ready: str | None = "getUpdates",
        timeout: float = 60.0,
        **kwargs: Any,
    ) -> BotProcess:
        since = fake_telegram.now()
        process = BotProcess(
            {**bot_env, **(env or {})},
            log_path=tmp_path / f"bot-{len(started) + 1}.log",
            name=f"bot #{len(started) + 1}",
            **kwargs,
        )
        started.append(process)
        await process.start()
        fake_telegram.watch(process)
        if ready is not None:
            await fake_telegram.wait_for_call(ready, since=since, timeout=timeout)
        return process

    yield start
    for process in started:
        await process.close()
        # pytest shows this only for a failing test, under "Captured stdout teardown".
        print(f"\n===== log of {process.name} =====\n{process.log}")
