"""Engine and migrations of the embedded billing database (SQLite or PostgreSQL)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from schema_revisions import is_current

# Alembic is imported only when there is a migration to run (schema_revisions).
if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# Its own version table, so the billing schema can share a PostgreSQL database
# with the bot's schema without the two Alembic histories colliding.
VERSION_TABLE = "billing_alembic_version"
SQLITE_BUSY_TIMEOUT_MS = 10_000


def database_kind(url: str) -> str:
    """'sqlite' or 'postgresql' (for log lines: never the URL, it may hold a password)."""
    return make_url(url).get_backend_name()


def _ensure_sqlite_folder(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def create_billing_engine(url: str, *, foreign_keys: bool = True, **kwargs: Any) -> AsyncEngine:
    """An async engine for the billing database, with the SQLite settings it relies on.

    On SQLite: WAL (readers do not block the writer), foreign keys enforced,
    a busy timeout instead of instant "database is locked", synchronous=FULL so
    that an acknowledged commit survives kill -9 or a power cut, and every
    transaction opened with BEGIN IMMEDIATE: a transaction that reads and then
    writes (a submission) must not fail half way with SQLITE_BUSY because
    another writer got in between. `foreign_keys=False` is for migrations only.
    """
    _ensure_sqlite_folder(url)
    kwargs.setdefault("hide_parameters", True)  # errors name statements, never values
    if database_kind(url) != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_async_engine(url, **kwargs)
    engine = create_async_engine(url, **kwargs)
    pragmas = (
        "PRAGMA journal_mode=WAL",
        f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}",
        f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
        "PRAGMA synchronous=FULL",
        # A page cache of 512 KiB per connection, not SQLite's 2 MB: the OS caches the
        # file anyway, and a reader's cache is emptied by every other commit.
        "PRAGMA cache_size=-512",
    )

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (it would not
        # BEGIN before a SELECT), and let SQLAlchemy's "begin" hook below do it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        cursor.close()

    def on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine.sync_engine, "connect", on_connect)
    event.listen(engine.sync_engine, "begin", on_begin)
    return engine


MIGRATION_LOCK = 7_352_002  # pg_advisory_xact_lock key (the bot's own schema uses ...001)


def alembic_config() -> Config:
    """An Alembic config for billing_client/migrations (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def revisions() -> list[str]:
    """Every revision id of the billing schema, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


async def _migrate(url: str, action: str, target: str) -> None:
    from alembic import command

    # Foreign keys off while migrating: SQLite's batch mode rebuilds a table by
    # copy-and-drop, and dropping a parent with foreign keys on would cascade.
    # The check afterwards makes sure the result is still consistent.
    engine = create_billing_engine(url, foreign_keys=False)

    def apply(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            # Several bot instances may start at once on one billing database:
            # they migrate one at a time (released at commit).
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config = alembic_config()
        config.attributes["connection"] = connection
        getattr(command, action)(config, target)

    try:
        async with engine.connect() as connection:
            await connection.run_sync(apply)
            await connection.commit()
            if connection.dialect.name == "sqlite":
                broken = (await connection.execute(text("PRAGMA foreign_key_check"))).all()
                if broken:
                    raise RuntimeError(
                        f"billing database migration left {len(broken)} broken foreign keys"
                    )
    finally:
        await engine.dispose()


async def upgrade_billing_database(url: str, target: str = "head") -> None:
    """Bring the billing database to `target` (default: the newest revision)."""
    if target == "head":
        engine = create_billing_engine(url)
        try:
            if await is_current(engine, VERSION_TABLE, MIGRATIONS / "versions"):
                return
        finally:
            await engine.dispose()
    logger.debug("upgrading the billing database (%s) to %s", database_kind(url), target)
    await _migrate(url, "upgrade", target)


async def downgrade_billing_database(url: str, target: str) -> None:
    """Take the billing database down to `target` (a revision id or 'base')."""
    await _migrate(url, "downgrade", target)
