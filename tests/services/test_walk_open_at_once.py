"""Two inspectors open a building nobody has opened this period, at the same moment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from billing_client.models import BuildingMeters
from services import walk
from storage.engine import create_engine, create_session_pool
from storage.migrate import upgrade_database
from storage.models import Account, Draft, DraftSlot
from tests.harness.databases import Databases
from tests.services.test_walk_positions import BUILDING, M1, M2, M3, NOW, listing


@pytest.fixture
async def engine(databases: Databases) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(databases.bot)
    yield engine
    await engine.dispose()


@pytest.fixture
async def pool(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    await upgrade_database(engine)
    pool = create_session_pool(engine)
    async with pool() as session:
        session.add(Account(id="acc", name="УК", login="demo"))
        await session.commit()
    return pool


async def open_at_once(
    pool: async_sessionmaker[AsyncSession], meters: BuildingMeters
) -> tuple[walk.Progress, walk.Progress]:
    """walk.open_building by two inspectors who both look for the draft before either
    of them writes; the draft as each of them sees it then."""
    both_looked = asyncio.Barrier(2)

    async def open_building() -> walk.Progress:
        async with pool() as session:
            execute = session.execute

            async def look_then_wait(*args: Any, **kwargs: Any) -> Any:
                # The first statement looks for the draft: both have looked before
                # either of them writes.
                session.execute = execute  # type: ignore[method-assign]
                result = await execute(*args, **kwargs)
                await both_looked.wait()
                return result

            session.execute = look_then_wait  # type: ignore[method-assign]
            return await walk.open_building(
                session, account_id="acc", building=BUILDING, meters=meters, now=NOW
            )

    async with asyncio.timeout(30):
        first, second = await asyncio.gather(open_building(), open_building())
    return first, second


async def test_two_inspectors_opening_a_new_building_at_once_share_one_draft(
    pool: async_sessionmaker[AsyncSession],
) -> None:
    first, second = await open_at_once(pool, listing(M1, M2, M3))

    assert first.draft_id == second.draft_id
    assert (first.total, second.total) == (3, 3)
    async with pool() as session:
        assert await session.scalar(select(func.count()).select_from(Draft)) == 1
        assert await session.scalar(select(func.count()).select_from(DraftSlot)) == 3


async def test_two_inspectors_reopening_a_building_whose_list_grew_at_once_both_open_it(
    pool: async_sessionmaker[AsyncSession],
) -> None:
    """Billing lists a new meter; both inspectors' openings would add its slot."""
    async with pool() as session:
        await walk.open_building(
            session, account_id="acc", building=BUILDING, meters=listing(M1, M2), now=NOW
        )
    first, second = await open_at_once(pool, listing(M1, M2, M3))

    assert first.draft_id == second.draft_id
    assert (first.total, second.total) == (3, 3)
    async with pool() as session:
        rows = await session.execute(select(DraftSlot.position, DraftSlot.meter_id))
        assert sorted(rows.all()) == [(0, "m-1"), (1, "m-2"), (2, "m-3")]
