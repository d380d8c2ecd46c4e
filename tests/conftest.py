"""Shared fixtures: the e2e harness (tests/harness) and the bot run in-process.

`app` builds the bot exactly as `python bot.py` does (create_dispatcher, the SQL
FSM storage, migrations, the embedded billing with its demo account) and runs its
long polling in this event loop against the fake Bot API server, so a test drives
it through `app.tg.user(...)` phones and can look into the database directly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiogram import Bot, Dispatcher
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from billing_client import open_billing
from billing_client.base import Billing
from bot import create_bot, create_dispatcher
from services.metrics import Metrics
from settings import Settings
from storage.crypto import Vault
from storage.engine import create_engine, create_session_pool
from storage.migrate import upgrade_database
from tests.harness.databases import Databases
from tests.harness.fake_telegram import FakeTelegram

pytest_plugins = ["tests.harness.fixtures"]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    # Lets fixtures see whether the test failed (to print the bot's log).
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@dataclass
class App:
    tg: FakeTelegram
    settings: Settings
    bot: Bot
    dispatcher: Dispatcher
    engine: AsyncEngine
    session_pool: async_sessionmaker[AsyncSession]
    billing: Billing
    metrics: Metrics


def make_settings(tmp_path: Path, api_url: str, bot_token: str, **overrides: object) -> Settings:
    data = tmp_path / "data"
    values: dict[str, object] = {
        "BOT_TOKEN": bot_token,
        "TELEGRAM_API_URL": api_url,
        "DATA_DIR": data,
        "DATABASE_URL": f"sqlite+aiosqlite:///{data / 'bot.db'}",
        "BILLING_DATABASE_URL": f"sqlite+aiosqlite:///{data / 'billing.db'}",
        "BILLING_URL": None,
        "SECRET_KEY": "test-secret-key-test-secret-key",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running_app(tg: FakeTelegram, settings: Settings) -> AsyncIterator[App]:
    """The bot built as `python bot.py` builds it, long-polling `tg` in this event loop."""
    engine = create_engine(settings.DATABASE_URL)
    await upgrade_database(engine)
    pool = create_session_pool(engine)
    billing = await open_billing(settings)
    metrics = Metrics(process_metrics=False)
    bot = create_bot(settings, metrics)
    assert settings.SECRET_KEY is not None
    dispatcher = create_dispatcher(
        settings=settings,
        session_pool=pool,
        billing=billing,
        vault=Vault.from_setting(settings.SECRET_KEY.get_secret_value()),
        metrics=metrics,
    )
    polling = asyncio.create_task(
        dispatcher.start_polling(bot, handle_signals=False, close_bot_session=False)
    )
    await tg.wait_for_call("getUpdates", timeout=10)
    try:
        yield App(tg, settings, bot, dispatcher, engine, pool, billing, metrics)
    finally:
        with contextlib.suppress(RuntimeError):
            await dispatcher.stop_polling()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(polling, 10)
        await bot.session.close()
        await billing.close()
        await engine.dispose()


@pytest.fixture
async def app(
    fake_telegram: FakeTelegram, bot_token: str, tmp_path: Path, databases: Databases
) -> AsyncIterator[App]:
    settings = make_settings(tmp_path, fake_telegram.api_url, bot_token, **databases.settings())
    async with running_app(fake_telegram, settings) as running:
        yield running
