"""The SQLite driver (storage/sqlite_driver.py): SQLAlchemy sees aiosqlite's behaviour,
a statement costs one hand-off to the connection's thread, and writers take turns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, event, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from storage.engine import create_engine
from storage.sqlite_driver import connector

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String, unique=True, nullable=False),
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


async def test_rows_counts_ids_and_errors_come_through(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        first = await conn.execute(insert(items).values(name="кв. 1"))
        assert first.inserted_primary_key == (1,)
        many = await conn.execute(insert(items), [{"name": f"кв. {n}"} for n in range(2, 7)])
        assert many.rowcount == 5
        changed = await conn.execute(text("UPDATE items SET name = name || '!' WHERE id > 4"))
        assert changed.rowcount == 2
    async with engine.connect() as conn:
        names = (await conn.execute(select(items.c.name).order_by(items.c.id))).scalars().all()
        assert names == ["кв. 1", "кв. 2", "кв. 3", "кв. 4", "кв. 5!", "кв. 6!"]
        assert (await conn.execute(select(items.c.id).where(items.c.id > 99))).first() is None
        with pytest.raises(IntegrityError):
            await conn.execute(insert(items).values(name="кв. 1"))
        await conn.rollback()
        # The connection is still usable after the error.
        assert (await conn.execute(text("SELECT count(*) FROM items"))).scalar() == 6


async def test_a_statement_is_one_hand_off(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiosqlite's own cursor makes four (cursor, execute, fetchall, close)."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert isinstance(driver, aiosqlite.Connection)
        hand_offs: list[object] = []
        real: Callable[..., Awaitable[object]] = driver._execute

        async def counted(fn: object, *args: object, **kwargs: object) -> object:
            hand_offs.append(fn)
            return await real(fn, *args, **kwargs)

        monkeypatch.setattr(driver, "_execute", counted)
        rows = (await conn.execute(select(items.c.id, items.c.name))).all()
        assert rows == []
        assert len(hand_offs) == 1
        await conn.rollback()  # nothing was open: no hand-off
        assert len(hand_offs) == 1
        await conn.execute(insert(items).values(name="кв. 1"))
        await conn.rollback()
        assert len(hand_offs) == 3
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM items"))).scalar() == 0


@pytest.fixture
def no_busy_wait(engine: AsyncEngine) -> AsyncEngine:
    """SQLite's busy handler off: a writer that meets a taken write lock fails at once."""

    def busy_timeout_zero(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    event.listen(engine.sync_engine, "connect", busy_timeout_zero)
    return engine


async def test_a_writer_waits_for_the_other_to_commit(no_busy_wait: AsyncEngine) -> None:
    """Within one process writers take turns before SQLite sees them, so none sleeps
    in SQLite's busy handler (1, 2, 5 … 100 ms between tries): here the handler is
    off, and the second writer would get "database is locked" the moment it met the
    first one's open transaction."""
    engine = no_busy_wait
    asked = asyncio.Event()

    async def second_writer() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))  # connected: the next line is the write
            asked.set()
            await conn.execute(insert(items).values(name="кв. 2"))
            await conn.commit()

    async with engine.connect() as first:
        await first.execute(insert(items).values(name="кв. 1"))  # the write lock is taken
        second = asyncio.create_task(second_writer())
        await asyncio.wait_for(asked.wait(), 5)
        await first.execute(text("SELECT count(*) FROM items"))  # a round trip meanwhile
        assert not second.done()
        await first.commit()
    await asyncio.wait_for(second, 5)
    async with engine.connect() as conn:
        names = (await conn.execute(select(items.c.name).order_by(items.c.id))).scalars().all()
    assert names == ["кв. 1", "кв. 2"]


async def test_a_writer_kept_waiting_past_the_busy_timeout_fails_as_sqlite_would(
    tmp_path: Path,
) -> None:
    url = make_url(f"sqlite+aiosqlite:///{tmp_path / 'locked.db'}")
    engine = create_async_engine(url, async_creator=connector(url, busy_timeout=0.05))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        async with engine.connect() as first, engine.connect() as second:
            await first.execute(insert(items).values(name="кв. 1"))
            with pytest.raises(OperationalError, match="database is locked"):
                await second.execute(insert(items).values(name="кв. 2"))
            await second.rollback()
            await first.rollback()  # gives the turn back
            await second.execute(insert(items).values(name="кв. 2"))
            await second.commit()
    finally:
        await engine.dispose()


async def test_a_connection_terminated_mid_transaction_gives_the_turn_back(
    no_busy_wait: AsyncEngine,
) -> None:
    """SQLAlchemy terminates a connection it cannot close (a cancelled close, garbage
    collection) with aiosqlite's stop(), not close(): the turn must not stay with it."""
    engine = no_busy_wait
    async with engine.connect() as first:
        await first.execute(insert(items).values(name="кв. 1"))  # holds the turn
        raw = await first.get_raw_connection()
        driver = raw.driver_connection
        assert isinstance(driver, aiosqlite.Connection)
        stopped = driver.stop()
        assert stopped is not None
        await asyncio.wait_for(stopped, 5)  # its thread closed it: the insert rolled back
        async with engine.connect() as second:
            await asyncio.wait_for(second.execute(insert(items).values(name="кв. 2")), 5)
            await second.commit()
            names = (await second.execute(select(items.c.name))).scalars().all()
        await first.invalidate()  # the pool must not hand the stopped one out again
    assert names == ["кв. 2"]
