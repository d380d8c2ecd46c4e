"""Engine and session pool for the bot's database (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage import sqlite_driver

# How long a statement waits for a lock another connection holds (a second process, a
# migration): waited out by the driver in asyncio sleeps, not in SQLite (sqlite_driver).
SQLITE_BUSY_TIMEOUT_MS = 10_000
# A pooled connection keeps its page cache (SQLite's default: 2 MB) for life, while
# the OS caches the file anyway and another connection's commit empties it. 512 KiB
# holds what one statement touches, a building's 600 new slots included.
SQLITE_CACHE_KIB = -512

T = TypeVar("T")


def database_kind(url: str) -> str:
    """'sqlite' or 'postgresql', for the start log line (never the URL with a password)."""
    return make_url(url).get_backend_name()


def ensure_sqlite_folder(url: str) -> None:
    """Create the folder of a file-based SQLite database, relative to the working dir."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on power loss or
    # kill -9 of the OS; FULL fsyncs the WAL at every commit, so an acknowledged
    # reading survives.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA cache_size={SQLITE_CACHE_KIB}")
    cursor.close()


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine with the SQLite pragmas this project relies on.

    A database error names its statement but not its parameters (`hide_parameters`):
    they are what users typed, Telegram's payloads and encrypted passwords, none of
    which belongs in a log.
    """
    ensure_sqlite_folder(url)
    kwargs.setdefault("hide_parameters", True)
    if database_kind(url) == "sqlite":
        kwargs.setdefault(
            "async_creator",
            sqlite_driver.connector(make_url(url), busy_timeout=SQLITE_BUSY_TIMEOUT_MS / 1000),
        )
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    return create_async_engine(url, **kwargs)


def create_session_pool(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """One factory for the process; handlers get one session per update."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def engine_of(session_pool: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    """The engine under the pool's sessions.

    The runner's per-update transactions (the inbox's store and done mark, the FSM
    write) need no ORM: on a connection they skip the session's bookkeeping.
    """
    engine: AsyncEngine = session_pool.kw["bind"]
    return engine


async def in_transaction(engine: AsyncEngine, work: Callable[[Connection], T]) -> T:
    """`work(connection)` in one transaction, committed unless it raises.

    `work` is plain (synchronous) SQLAlchemy, run whole in one greenlet
    (AsyncConnection.run_sync). Awaiting an AsyncConnection statement by statement
    costs a greenlet and the async wrappers for each call: for a two-statement
    transaction like the update runner's done mark, about 15 % more CPU.
    """
    async with engine.connect() as connection:
        return await connection.run_sync(_committed, work)


def _committed(connection: Connection, work: Callable[[Connection], T]) -> T:
    with connection.begin():
        return work(connection)


def upsert_insert(dialect: str) -> Any:
    """The dialect's INSERT (the one with ON CONFLICT), by dialect name.

    Imported when first needed: SQLAlchemy's PostgreSQL dialect costs a SQLite bot
    about 2 MB of memory for nothing. Callers on the hot path build their statement
    once per dialect (functools.cache), not per call.
    """
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert
