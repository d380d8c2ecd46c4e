"""The embedded billing's own Alembic migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from billing_client.embedded.db import (
    VERSION_TABLE,
    create_billing_engine,
    downgrade_billing_database,
    revisions,
    upgrade_billing_database,
)
from billing_client.embedded.models import Base
from tests.billing.conftest import database_url, empty_scratch_database


async def url_in(tmp_path: Path) -> str:
    url = database_url(tmp_path)
    if not url.startswith("sqlite"):
        await empty_scratch_database(url)  # a scratch PostgreSQL: start empty
    return url


async def table_names(url: str) -> set[str]:
    engine = create_billing_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_every_revision_upgrades_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    url = await url_in(tmp_path)
    chain = revisions()
    assert chain, "no billing migrations found"

    for index, revision in enumerate(chain):
        await upgrade_billing_database(url, revision)
        await downgrade_billing_database(url, chain[index - 1] if index else "base")
        await upgrade_billing_database(url, revision)

    assert await table_names(url) == {table.name for table in Base.metadata.sorted_tables} | {
        VERSION_TABLE
    }
    await downgrade_billing_database(url, "base")
    assert await table_names(url) == {VERSION_TABLE}


async def test_the_migrations_build_exactly_the_models(tmp_path: Path) -> None:
    url = await url_in(tmp_path)
    await upgrade_billing_database(url)

    def differences(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "version_table": VERSION_TABLE}
        )
        return list(compare_metadata(context, Base.metadata))

    engine = create_billing_engine(url)
    try:
        async with engine.connect() as connection:
            diff = await connection.run_sync(differences)
    finally:
        await engine.dispose()

    assert diff == []


async def test_upgrading_twice_is_harmless(tmp_path: Path) -> None:
    url = await url_in(tmp_path)

    await upgrade_billing_database(url)
    await upgrade_billing_database(url)

    assert "billing_slots" in await table_names(url)
