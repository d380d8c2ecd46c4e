"""Fixtures of the storage tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.engine import create_engine, create_session_pool
from storage.migrate import upgrade_database
from tests.harness.databases import Databases


@pytest.fixture
async def pool(databases: Databases) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the bot's database, migrated to the newest schema."""
    engine = create_engine(databases.bot)
    await upgrade_database(engine)
    try:
        yield create_session_pool(engine)
    finally:
        await engine.dispose()
