"""Storage: migrations stairway, SQLite durability settings, persistent FSM, the vault."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import StorageKey
from sqlalchemy import event, inspect, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from billing_client.embedded.db import create_billing_engine
from schema_revisions import head_revisions
from storage.crypto import SecretKeyError, Vault, load_or_create_secret_key
from storage.engine import create_engine, create_session_pool, in_transaction
from storage.fsm import SqlStorage
from storage.migrate import (
    MIGRATIONS,
    alembic_config,
    downgrade_database,
    revisions,
    upgrade_database,
)
from storage.models import FsmRecord
from tests.harness.databases import Databases, on_postgresql

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def engine(databases: Databases) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(databases.bot)
    yield engine
    await engine.dispose()


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    return set(names) - {"alembic_version"}


async def test_migrations_stairway(engine: AsyncEngine) -> None:
    """Upgrade, downgrade and upgrade again every revision, one step at a time."""
    all_revisions = revisions()
    assert all_revisions, "no migrations found"
    previous = "base"
    for revision in all_revisions:
        await upgrade_database(engine, revision)
        await downgrade_database(engine, previous)
        await upgrade_database(engine, revision)
        previous = revision
    assert {"accounts", "telegram_users", "fsm_records"} <= await table_names(engine)
    await downgrade_database(engine, "base")
    assert await table_names(engine) == set()


def test_newest_revisions_are_read_from_the_scripts_as_alembic_reads_them() -> None:
    from alembic.script import ScriptDirectory

    from billing_client.embedded import db as billing_db

    for config, folder in (
        (alembic_config(), MIGRATIONS / "versions"),
        (billing_db.alembic_config(), billing_db.MIGRATIONS / "versions"),
    ):
        heads = set(ScriptDirectory.from_config(config).get_heads())
        assert heads and head_revisions(folder) == heads


async def test_a_start_on_current_databases_does_not_load_alembic(databases: Databases) -> None:
    """Alembic stays in memory once imported (~10 MB): a bot with nothing to migrate skips it."""
    from billing_client.embedded.db import upgrade_billing_database

    engine = create_engine(databases.bot)
    try:
        await upgrade_database(engine)
    finally:
        await engine.dispose()
    await upgrade_billing_database(databases.billing)
    start = (
        "import asyncio, os, sys\n"
        "from storage.engine import create_engine\n"
        "from storage.migrate import upgrade_database\n"
        "from billing_client.embedded.db import upgrade_billing_database\n"
        "async def main():\n"
        "    engine = create_engine(os.environ['DATABASE_URL'])\n"
        "    await upgrade_database(engine)\n"
        "    await engine.dispose()\n"
        "    await upgrade_billing_database(os.environ['BILLING_DATABASE_URL'])\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in ('alembic', 'mako') if m in sys.modules))\n"
    )
    child = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", start],
        cwd=ROOT,
        env={**os.environ, **databases.settings()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "[]"


@pytest.mark.skipif(on_postgresql(), reason="checks SQLite's own settings")
async def test_sqlite_pragmas_make_commits_durable(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        journal = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
        sync = (await conn.execute(text("PRAGMA synchronous"))).scalar()
        fks = (await conn.execute(text("PRAGMA foreign_keys"))).scalar()
    assert journal == "wal"
    assert sync == 2  # FULL
    assert fks == 1


class Walk(StatesGroup):
    entering_value = State()


async def test_fsm_state_and_data_survive_a_new_engine(databases: Databases) -> None:
    url = databases.bot
    key = StorageKey(bot_id=42, chat_id=1001, user_id=1001)
    first = create_engine(url)
    await upgrade_database(first)
    storage = SqlStorage(create_session_pool(first))
    await storage.set_state(key, Walk.entering_value)
    await storage.update_data(key, {"building_id": "b-101", "apartment": "12а"})
    await first.dispose()

    second = create_engine(url)
    restored = SqlStorage(create_session_pool(second))
    assert await restored.get_state(key) == "Walk:entering_value"
    assert await restored.get_data(key) == {"building_id": "b-101", "apartment": "12а"}
    other = StorageKey(bot_id=42, chat_id=1002, user_id=1002)
    assert await restored.get_state(other) is None
    assert await restored.get_data(other) == {}
    async with second.connect() as conn:
        raw = (await conn.execute(text("SELECT data FROM fsm_records"))).scalar_one()
    assert raw.startswith("{") and "12а" in raw  # JSON, readable, not pickle
    await restored.set_state(key, None)
    assert await restored.get_state(key) is None
    await second.dispose()


async def _stored_state(engine: AsyncEngine) -> tuple[str | None, str | None] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(text("SELECT state, data FROM fsm_records"))).first()
    return None if row is None else (row.state, row.data)


async def test_fsm_writes_of_an_update_are_stored_once_when_saved(engine: AsyncEngine) -> None:
    """Inside `collecting` the handler sees its writes at once; the database gets them
    only when the runner saves them (with the update's done mark), in one statement."""
    await upgrade_database(engine)
    pool = create_session_pool(engine)
    storage = SqlStorage(pool)
    key = StorageKey(bot_id=42, chat_id=1001, user_id=1001)
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    with storage.collecting() as changes:
        await storage.set_state(key, Walk.entering_value)
        await storage.update_data(key, {"position": 3})
        await storage.update_data(key, {"card_id": 17})
        assert await storage.get_state(key) == "Walk:entering_value"
        assert await storage.get_data(key) == {"position": 3, "card_id": 17}
    assert statements == []
    assert await _stored_state(engine) is None
    await in_transaction(engine, lambda connection: storage.save(connection, [changes]))
    assert len(statements) == 1  # state and data in one statement
    state, data = await _stored_state(engine) or (None, None)
    assert state == "Walk:entering_value" and data is not None and '"card_id": 17' in data

    # Outside an update (a background task) a write is stored before it returns.
    await storage.update_data(key, {"card_id": 18})
    assert '"card_id": 18' in str(await _stored_state(engine))


async def test_an_fsm_write_refreshes_the_records_updated_at(engine: AsyncEngine) -> None:
    """An operator reading fsm_records sees when each chat's state last changed."""
    await upgrade_database(engine)
    storage = SqlStorage(create_session_pool(engine))
    key = StorageKey(bot_id=42, chat_id=1001, user_id=1001)
    await storage.set_state(key, Walk.entering_value)
    old = datetime(2000, 1, 1, tzinfo=UTC)
    async with engine.begin() as conn:
        await conn.execute(update(FsmRecord).values(updated_at=old))
    await storage.update_data(key, {"position": 4})
    async with engine.connect() as conn:
        stamp = (await conn.execute(select(FsmRecord.updated_at))).scalar_one()
    assert stamp.replace(tzinfo=stamp.tzinfo or UTC) > old


async def test_fsm_write_after_the_update_ended_is_stored_at_once(engine: AsyncEngine) -> None:
    """A task an update started may write after the update was saved: never lost."""
    await upgrade_database(engine)
    storage = SqlStorage(create_session_pool(engine))
    key = StorageKey(bot_id=42, chat_id=1001, user_id=1001)
    release = asyncio.Event()

    async def later() -> None:
        await release.wait()
        await storage.set_state(key, Walk.entering_value)

    with storage.collecting() as changes:
        task = asyncio.create_task(later())  # copies the update's context
    assert not changes.records
    release.set()
    await asyncio.wait_for(task, timeout=10)
    assert (await _stored_state(engine) or (None, None))[0] == "Walk:entering_value"


@pytest.mark.parametrize("factory", [create_engine, create_billing_engine])
async def test_a_database_error_names_the_statement_but_not_the_values(
    databases: Databases, factory: Callable[[str], AsyncEngine]
) -> None:
    """What an operator sees in the log of a failed statement: no typed value, no
    encrypted password (both engines: the bot's and the embedded billing's)."""
    engine = factory(databases.bot)
    secret = "gAAAAA-ciphertext-of-a-password"
    try:
        with pytest.raises(DBAPIError) as failed:
            async with engine.connect() as conn:
                await conn.execute(
                    text("SELECT * FROM no_such_table WHERE password = :secret"),
                    {"secret": secret},
                )
    finally:
        await engine.dispose()
    assert "no_such_table" in str(failed.value)
    assert secret not in str(failed.value)


def test_vault_round_trip_and_rotation() -> None:
    old = Vault.from_setting("old-key-old-key-old-key")
    token = old.encrypt("пароль-123")
    assert "пароль" not in token
    rotated_vault = Vault.from_setting("new-key-new-key-new-key,old-key-old-key-old-key")
    assert rotated_vault.decrypt(token) == "пароль-123"
    rotated = rotated_vault.rotate(token)
    assert Vault.from_setting("new-key-new-key-new-key").decrypt(rotated) == "пароль-123"
    with pytest.raises(SecretKeyError):
        Vault.from_setting("another-key-entirely-xx").decrypt(token)


def test_generated_secret_key_is_private_and_stable(tmp_path: Path) -> None:
    key = load_or_create_secret_key(None, tmp_path / "data")
    path = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_secret_key(None, tmp_path / "data") == key
    assert load_or_create_secret_key("configured", tmp_path / "data") == "configured"


async def test_redis_url_switches_fsm_to_redis_keyed_by_bot(databases: Databases) -> None:
    from aiogram.fsm.storage.memory import SimpleEventIsolation
    from aiogram.fsm.storage.redis import RedisStorage

    from storage.fsm import RenewedRedisIsolation, create_fsm

    engine = create_engine(databases.bot)
    pool = create_session_pool(engine)
    try:
        sql, local_lock = create_fsm(None, pool)
        assert isinstance(sql, SqlStorage) and isinstance(local_lock, SimpleEventIsolation)

        redis, shared_lock = create_fsm("redis://127.0.0.1:1/0", pool)
        assert isinstance(redis, RedisStorage) and isinstance(shared_lock, RenewedRedisIsolation)
        key = StorageKey(bot_id=42, chat_id=1001, user_id=1001)
        # Two bots on one Redis never read each other's users.
        assert redis.key_builder.build(key, "state") == "fsm:42:1001:1001:default:state"
        await redis.close()
    finally:
        await engine.dispose()


@pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="needs TEST_REDIS_URL")
async def test_redis_fsm_state_survives_a_new_storage(databases: Databases) -> None:
    from storage.fsm import create_fsm

    engine = create_engine(databases.bot)
    pool = create_session_pool(engine)
    key = StorageKey(bot_id=42, chat_id=1001, user_id=1001)
    first, _ = create_fsm(databases.redis, pool)
    await first.set_state(key, Walk.entering_value)
    await first.update_data(key, {"apartment": "12а"})
    await first.close()
    second, _ = create_fsm(databases.redis, pool)
    assert await second.get_state(key) == "Walk:entering_value"
    assert await second.get_data(key) == {"apartment": "12а"}
    await second.close()
    await engine.dispose()


@pytest.mark.skipif(not on_postgresql(), reason="several instances share PostgreSQL only")
async def test_instances_starting_at_once_migrate_one_at_a_time(databases: Databases) -> None:
    from billing_client.embedded.db import upgrade_billing_database

    engines = [create_engine(databases.bot) for _ in range(3)]
    try:
        await asyncio.gather(*(upgrade_database(engine) for engine in engines))
        await asyncio.gather(*(upgrade_billing_database(databases.billing) for _ in range(3)))
        assert {"accounts", "submissions", "fsm_records"} <= await table_names(engines[0])
    finally:
        for engine in engines:
            await engine.dispose()
