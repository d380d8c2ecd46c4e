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

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool


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


async def _maintenance(statement: str) -> None:
    base = server_url()
    assert base is not None
    engine = create_async_engine(base, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
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
