"""Where a test keeps its data: SQLite files in tmp_path, or a scratch PostgreSQL + Redis.

`python3 tasks.py test` runs the suite a second time with these set (it starts the
servers itself):

    TEST_DATABASE_URL   postgresql+asyncpg://user@127.0.0.1:port/postgres — a server on
                        which each test creates its own fresh databases, dropped after it
    TEST_REDIS_URL      redis://127.0.0.1:port — each pytest worker uses its own Redis
                        database number and empties it before every test

They are test-only names on purpose: a developer's exported DATABASE_URL or REDIS_URL
(their real bot's) never makes the suite create databases or flush keys there.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from settings import Settings


def server_url() -> str | None:
    """The scratch PostgreSQL server's maintenance URL, when the suite runs on one."""
    return os.environ.get("TEST_DATABASE_URL") or None


def on_postgresql() -> bool:
    return server_url() is not None


def worker_number() -> int:
    """0 without pytest-xdist, else the worker's index (gw0 -> 0, gw1 -> 1, ...)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker.removeprefix("gw") or 0)


def url_of(database: str) -> str:
    """The URL of `database` on the scratch server."""
    base = server_url()
    assert base is not None, "TEST_DATABASE_URL is not set"
    return make_url(base).set(database=database).render_as_string(hide_password=False)


async def _maintenance(*statements: str) -> None:
    base = server_url()
    assert base is not None
    engine = create_async_engine(base, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def create_database(name: str) -> str:
    """Create an empty database on the scratch server; returns its URL."""
    await _maintenance(f'CREATE DATABASE "{name}"')
    return url_of(name)


async def drop_database(name: str) -> None:
    # FORCE: a bot process killed by a test may still hold a connection.
    await _maintenance(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def ensure_database(url: str) -> None:
    """Create the database `url` names when it does not exist yet (on its own server)."""
    target = make_url(url)
    maintenance = target.set(database="postgres")
    engine = create_async_engine(maintenance, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            found = await connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": target.database},
            )
            if not found:
                await connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        await engine.dispose()


def per_worker(url: str) -> str:
    """`url` with the pytest-xdist worker's number appended to the database name."""
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{worker_number()}").render_as_string(
        hide_password=False
    )


@dataclass(frozen=True)
class Databases:
    """The URLs one test's bot uses: its own database and the embedded billing's."""

    bot: str
    billing: str
    redis: str | None

    def settings(self) -> dict[str, str]:
        """The settings naming them (DATABASE_URL, BILLING_DATABASE_URL, REDIS_URL)."""
        values = {"DATABASE_URL": self.bot, "BILLING_DATABASE_URL": self.billing}
        if self.redis:
            values["REDIS_URL"] = self.redis
        return values


async def fresh_redis_url() -> str | None:
    """This worker's Redis database, emptied; None when the suite runs without Redis."""
    base = os.environ.get("TEST_REDIS_URL")
    if not base:
        return None
    from redis.asyncio import Redis

    # Database 0 is left alone; worker N gets N + 1 (the server has 64).
    url = f"{base.rstrip('/')}/{worker_number() + 1}"
    client = Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    return url


@pytest.fixture
async def databases(tmp_path: Path) -> AsyncIterator[Databases]:
    """SQLite files under tmp_path/data, or two fresh PostgreSQL databases (+ Redis)."""
    redis = await fresh_redis_url()
    if not on_postgresql():
        data = tmp_path / "data"
        yield Databases(
            bot=f"sqlite+aiosqlite:///{data / 'bot.db'}",
            billing=f"sqlite+aiosqlite:///{data / 'billing.db'}",
            redis=redis,
        )
        return
    stem = f"t{worker_number()}_{uuid.uuid4().hex[:12]}"
    names = [f"{stem}_bot", f"{stem}_billing"]
    urls = [await create_database(name) for name in names]
    try:
        yield Databases(bot=urls[0], billing=urls[1], redis=redis)
    finally:
        for name in names:
            await drop_database(name)


class Templates:
    """This worker's freshly opened databases, made once and copied into each `app` test.

    The bot's schema at head, and the embedded billing migrated with its demo account
    (the cheap test argon2, as the `app` fixture opens it). Migrating both and loading
    the demo took about 1 s per test on SQLite and 2-4 s on PostgreSQL; a copy (file
    copy, or CREATE DATABASE ... TEMPLATE) takes a fraction. Only the in-process `app`
    uses them: the real `python bot.py` tests still start on empty databases, and
    tests/foundation/test_storage.py and tests/billing/test_migrations.py migrate.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._made: dict[tuple[str, str, str], str] = {}  # (kind, part, key) -> file or name

    async def copy_into(self, databases: Databases, settings: Settings) -> None:
        """Fill the test's databases from the templates when its settings allow."""
        from billing_client import open_billing
        from storage.engine import create_engine
        from storage.migrate import upgrade_database

        from .hashing import fast_hasher

        async def bot_schema(url: str) -> None:
            engine = create_engine(url)
            try:
                await upgrade_database(engine)
            finally:
                await engine.dispose()

        async def billing_with_demo(url: str) -> None:
            template_settings = settings.model_copy(update={"BILLING_DATABASE_URL": url})
            billing = await open_billing(template_settings, password_hasher=fast_hasher())
            await billing.close()

        if databases.bot == settings.DATABASE_URL:
            await self._copy("bot", "", databases.bot, bot_schema)
        if (
            databases.billing == settings.BILLING_DATABASE_URL
            and settings.BILLING_URL is None
            and settings.BILLING_DEMO
        ):
            # The demo's previous readings are dated by the billing's today.
            today = datetime.now(ZoneInfo(settings.TIMEZONE)).date()
            key = f"{settings.TIMEZONE} {today}"
            await self._copy("billing", key, databases.billing, billing_with_demo)

    async def _copy(
        self, part: str, key: str, url: str, make: Callable[[str], Awaitable[None]]
    ) -> None:
        target = make_url(url)
        kind = target.get_backend_name()
        made = (kind, part, key)
        if made not in self._made:
            name = f"template_{worker_number()}_{part}_{len(self._made)}"
            if kind == "sqlite":
                path = self.folder / f"{name}.db"
                await make(f"sqlite+aiosqlite:///{path}")
                self._made[made] = str(path)
            else:
                await make(await create_database(name))
                self._made[made] = name
        source = self._made[made]
        if kind == "sqlite":
            _copy_file(Path(source), Path(str(target.database)))
        elif await _is_empty(url):  # a test that filled its own database keeps it
            database = target.database
            await _maintenance(
                f'DROP DATABASE IF EXISTS "{database}"',
                f'CREATE DATABASE "{database}" TEMPLATE "{source}"',
            )

    async def drop(self) -> None:
        """Drop the PostgreSQL templates (the SQLite ones go with the folder)."""
        for (kind, _part, _key), name in self._made.items():
            if kind != "sqlite":
                await drop_database(name)


async def _is_empty(url: str) -> bool:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            tables = await connection.scalar(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            )
            return bool(tables == 0)
    finally:
        await engine.dispose()


def _copy_file(source: Path, destination: Path) -> None:
    if not destination.exists():  # a test that made its own database keeps it
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)


@pytest.fixture(scope="session")
def database_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    templates = Templates(tmp_path_factory.mktemp("templates"))
    yield templates
    if on_postgresql():
        asyncio.run(templates.drop())


async def fsm_contents(database_url: str, redis_url: str | None) -> dict[str, str]:
    """Everything the bot's FSM storage holds, key -> stored text (state or JSON data)."""
    if redis_url:
        from redis.asyncio import Redis

        client = Redis.from_url(redis_url, decode_responses=True)
        try:
            keys = [key async for key in client.scan_iter("fsm:*")]
            values = [await client.get(key) for key in keys]
        finally:
            await client.aclose()
        return {str(k): str(v) for k, v in zip(keys, values, strict=True) if v}
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT key, state, data FROM fsm_records"))
            return {
                f"{key}:{part}": value
                for key, state, data in rows
                for part, value in (("state", state), ("data", data))
                if value
            }
    finally:
        await engine.dispose()


async def stored_bytes(database_url: str) -> dict[str, bytes]:
    """What the database keeps, as bytes: SQLite's files (WAL included), or on
    PostgreSQL every row of every table as text (what a dump would hold)."""
    parsed = make_url(database_url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(str(parsed.database))
        return {p.name: p.read_bytes() for p in path.parent.glob(f"{path.name}*")}
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            tables = await connection.scalars(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            dump: dict[str, bytes] = {}
            for table in tables.all():
                rows = await connection.scalars(text(f'SELECT t::text FROM "{table}" t'))
                dump[table] = "\n".join(rows.all()).encode()
            return dump
    finally:
        await engine.dispose()
