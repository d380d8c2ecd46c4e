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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiogram import Bot, Dispatcher
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from billing_client import open_billing
from billing_client.base import Billing
from bot import MAX_CONCURRENT_UPDATES, create_bot, create_dispatcher, receive_updates
from services.group_posts import GroupPoster
from services.metrics import Metrics
from services.outbox import Outbox
from settings import Settings
from storage.crypto import Vault
from storage.engine import create_engine, create_session_pool, database_kind
from storage.migrate import upgrade_database
from tests.harness.databases import Databases, Templates
from tests.harness.fake_telegram import FakeTelegram
from tests.harness.hashing import fast_hasher
from updates import UpdateRunner

pytest_plugins = ["tests.harness.fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        type=int,
        default=None,
        help="multiply the run counts of tests/reliability (also env SOAK=N); default 1",
    )


@pytest.fixture
def soak(request: pytest.FixtureRequest) -> int:
    """How many times the fault suite multiplies its run counts (--soak N or SOAK=N)."""
    import os

    value = request.config.getoption("--soak") or int(os.environ.get("SOAK", "1") or 1)
    return max(1, int(value))


def expected_seconds(item: pytest.Item) -> float:
    marker = item.get_closest_marker("duration")
    return float(marker.args[0]) if marker is not None else 0.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Longest first (the sort is stable: the rest keep their order). pytest-xdist hands
    # tests out in this order, so a two-minute test starts at once beside the others
    # instead of near the end with the other worker left idle (tasks.py: --dist load
    # --maxschedchunk 1). Every worker sorts the same collection the same way.
    items.sort(key=expected_seconds, reverse=True)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    # Lets fixtures see whether the test failed (to print the bot's log).
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


class TestClock:
    """A time source tests can set (the digest's clock); None means the real time."""

    def __init__(self) -> None:
        self.at: datetime | None = None

    def __call__(self) -> datetime:
        return self.at or datetime.now(UTC)


@dataclass
class App:
    tg: FakeTelegram
    settings: Settings
    bot: Bot
    dispatcher: Dispatcher
    engine: AsyncEngine
    session_pool: async_sessionmaker[AsyncSession]
    billing: Billing
    runner: UpdateRunner
    metrics: Metrics
    clock: TestClock = field(default_factory=TestClock)

    @property
    def poster(self) -> GroupPoster:
        """The group poster (started and stopped with polling)."""
        poster: GroupPoster = self.dispatcher["group_poster"]
        return poster

    @property
    def outbox(self) -> Outbox:
        """The outbox worker (started and stopped with polling)."""
        outbox: Outbox = self.dispatcher["outbox"]
        return outbox


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
async def running_app(
    tg: FakeTelegram, settings: Settings, *, ready: str = "getUpdates"
) -> AsyncIterator[App]:
    """The bot built and run as `python bot.py` does, in this event loop (polling or webhook)."""
    engine = create_engine(settings.DATABASE_URL)
    await upgrade_database(engine)
    pool = create_session_pool(engine)
    billing = await open_billing(settings, password_hasher=fast_hasher())
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
    clock = TestClock()
    dispatcher["digest_clock"] = clock
    # The same inbox runner as `python bot.py` (signal handlers are the test loop's own).
    runner = UpdateRunner(
        bot=bot,
        dispatcher=dispatcher,
        session_pool=pool,
        concurrency=MAX_CONCURRENT_UPDATES,
        sole_instance=database_kind(settings.DATABASE_URL) == "sqlite",
    )
    since = tg.now()
    receiving = asyncio.create_task(receive_updates(runner, settings, handle_signals=False))
    await tg.wait_for_call(ready, since=since, timeout=10)
    try:
        yield App(tg, settings, bot, dispatcher, engine, pool, billing, runner, metrics, clock)
    finally:
        runner.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(receiving, 10)
        await bot.session.close()
        await billing.close()
        await engine.dispose()


@pytest.fixture
def app_overrides() -> dict[str, object]:
    """Settings for the `app` fixture; a module overrides this fixture to change them."""
    return {}


@pytest.fixture
async def app(
    fake_telegram: FakeTelegram,
    bot_token: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    app_overrides: dict[str, object],
    databases: Databases,
    database_templates: Templates,
) -> AsyncIterator[App]:
    # @pytest.mark.app_settings(OUTBOX_RETRY_BASE=0.1, ...) changes settings for one test.
    marker = request.node.get_closest_marker("app_settings")
    overrides = {
        **databases.settings(),
        **app_overrides,
        **(marker.kwargs if marker is not None else {}),
    }
    settings = make_settings(tmp_path, fake_telegram.api_url, bot_token, **overrides)
    await database_templates.copy_into(databases, settings)
    async with running_app(fake_telegram, settings) as running:
        yield running
