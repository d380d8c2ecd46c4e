"""The SQLite driver (storage/sqlite_driver.py): SQLAlchemy sees aiosqlite's behaviour,
and a statement costs one hand-off to the connection's thread."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import create_engine

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
