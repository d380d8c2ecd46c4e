"""The SQLite driver (storage/sqlite_driver.py): SQLAlchemy sees aiosqlite's behaviour,
statements run on the event loop's thread, a lock held elsewhere is waited for without
stopping the loop, and writers take turns."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from storage import sqlite_driver
from storage.engine import create_engine
from storage.sqlite_driver import connector, off_the_loop

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


async def test_a_statement_makes_no_hand_off_and_a_commit_one(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiosqlite's own cursor hands four calls per statement to the connection's thread;
    here only a commit goes there (it waits for the disk)."""
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
        assert (await conn.execute(select(items.c.id, items.c.name))).all() == []
        await conn.commit()  # nothing was written: nothing to commit
        assert hand_offs == []
        await conn.execute(insert(items).values(name="кв. 1"))
        await conn.execute(insert(items).values(name="кв. 2"))
        assert hand_offs == []
        await conn.commit()
        assert len(hand_offs) == 1
        await conn.execute(insert(items).values(name="кв. 3"))
        await conn.rollback()
        await conn.rollback()  # nothing open
        assert len(hand_offs) == 1
        with off_the_loop():  # a long read: the loop serves others meanwhile
            assert (await conn.execute(select(func.count()).select_from(items))).scalar() == 2
        assert len(hand_offs) == 2
    async with engine.connect() as conn:
        names = (await conn.execute(select(items.c.name).order_by(items.c.id))).scalars().all()
    assert names == ["кв. 1", "кв. 2"]


async def test_sqlite_itself_never_sleeps_on_a_lock(engine: AsyncEngine) -> None:
    """Its busy handler would sleep inside the statement, and so stop the event loop."""
    async with engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 0


def other_process(path: Path) -> sqlite3.Connection:
    """A connection of its own, as another process (a migration, a second bot) has."""
    return sqlite3.connect(path, isolation_level=None, timeout=0)


async def test_a_lock_held_by_another_process_is_waited_for_while_the_loop_runs(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    other = other_process(tmp_path / "driver.db")
    other.execute("BEGIN IMMEDIATE")  # the write lock, outside this engine
    other.execute("INSERT INTO items (name) VALUES ('кв. 1')")
    ran_on = asyncio.Event()

    async def tick() -> None:
        for _ in range(50):
            await asyncio.sleep(0.001)
        ran_on.set()

    async def write() -> None:
        async with engine.begin() as conn:
            await conn.execute(insert(items).values(name="кв. 2"))

    ticker = asyncio.create_task(tick())
    writer = asyncio.create_task(write())
    try:
        await asyncio.wait_for(ran_on.wait(), 5)  # the loop ran on while the writer waited
        assert not writer.done()
        other.execute("COMMIT")
        await asyncio.wait_for(writer, 5)
    finally:
        ticker.cancel()
        other.close()
    async with engine.connect() as conn:
        names = (await conn.execute(select(items.c.name).order_by(items.c.id))).scalars().all()
    assert names == ["кв. 1", "кв. 2"]


async def test_a_lock_held_past_the_busy_timeout_fails_as_sqlite_would(tmp_path: Path) -> None:
    url = make_url(f"sqlite+aiosqlite:///{tmp_path / 'locked.db'}")
    engine = create_async_engine(url, async_creator=connector(url, busy_timeout=0.05))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        other = other_process(tmp_path / "locked.db")
        other.execute("BEGIN IMMEDIATE")
        async with engine.connect() as conn:
            with pytest.raises(OperationalError, match="database is locked"):
                await asyncio.wait_for(conn.execute(insert(items).values(name="кв. 1")), 5)
            await conn.rollback()
            other.execute("ROLLBACK")
            other.close()
            await conn.execute(insert(items).values(name="кв. 1"))
            await conn.commit()
    finally:
        await engine.dispose()


async def test_a_writer_waits_for_the_other_to_commit(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within one process writers take turns before SQLite sees them: the second one
    starts the moment the first commits, without meeting SQLite's lock and sleeping.
    Here a locked database is not tried again, so only the turn can make it wait."""
    monkeypatch.setattr(sqlite_driver, "_BUSY_CODES", frozenset())
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


async def test_a_writer_kept_waiting_for_its_turn_past_the_busy_timeout_fails(
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
    engine: AsyncEngine,
) -> None:
    """SQLAlchemy terminates a connection it cannot close (a cancelled close, garbage
    collection) with aiosqlite's stop(), not close(): the turn must not stay with it."""
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
