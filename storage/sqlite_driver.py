"""aiosqlite with one hand-off to the connection's thread per statement.

aiosqlite runs every call of the sqlite3 API on the connection's own thread, and
SQLAlchemy makes four such calls per statement (create the cursor, execute, fetch
all rows, close the cursor). Each hand-off wakes the event loop through its self-
pipe; in the benchmark (benchmarks/, profile) those wake-ups cost more of the bot's
CPU than SQLite itself. Here the cursor is created, executed, read to the end and
closed in one hand-off: a statement costs one round trip instead of four. The rows,
`description`, `rowcount` and `lastrowid` are what SQLAlchemy then reads; sqlite3
keeps them on a closed cursor. A rollback with no transaction open is skipped.

Writers take turns on an asyncio lock (`_Writers`), one per engine: SQLite lets one
transaction write at a time, and a connection that finds the write lock taken
waits in SQLite's busy handler, which sleeps 1, 2, 5, 10 … 100 ms between tries.
Between the statements of one transaction the event loop runs other updates, so
under load writers often met a taken lock and then slept far past its release:
in the benchmark, 200 statements in a paced window of 800 updates waited 8–330 ms. On
the lock, the next writer starts the moment the previous one commits. Other
processes on the same file (a second engine, a migration) are still kept apart
by SQLite's own lock and busy timeout.
"""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

import aiosqlite
from sqlalchemy.engine import URL

# The statements before which the sqlite3 module opens a transaction (its "DML").
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def _writes(sql: str) -> bool:
    return sql.lstrip()[:7].upper().startswith(_WRITES)


class _Writers:
    """The turn to write, for the connections of one engine, per event loop."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock


class _Cursor(aiosqlite.Cursor):
    _conn: _Connection

    def __init__(self, connection: _Connection) -> None:
        self.iter_chunk_size = connection._iter_chunk_size
        self._conn = connection
        self._cursor: sqlite3.Cursor = None  # type: ignore[assignment]  # made by execute
        self._rows: list[Any] = []

    def _run(self, statement: Callable[[sqlite3.Cursor], object]) -> list[Any]:
        """On the connection's thread: the whole statement, its rows kept."""
        connection = self._conn._conn
        cursor = connection.cursor()
        try:
            statement(cursor)
            return cursor.fetchall() if cursor.description else []
        finally:
            self._cursor = cursor
            cursor.close()
            self._conn.transaction_open = connection.in_transaction

    async def _statement(self, sql: str, statement: Callable[[sqlite3.Cursor], object]) -> None:
        connection = self._conn
        if _writes(sql):
            await connection.take_write_turn()
        run: Callable[..., Awaitable[list[Any]]] = self._execute
        try:
            self._rows = await run(self._run, statement)
        finally:
            if not connection.transaction_open:
                connection.end_write_turn()

    async def execute(self, sql: str, parameters: Any = None) -> _Cursor:
        await self._statement(sql, lambda cursor: cursor.execute(sql, parameters or ()))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> _Cursor:
        await self._statement(sql, lambda cursor: cursor.executemany(sql, parameters))
        return self

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = size or self.arraysize
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows

    async def close(self) -> None:
        """Closed already, on the connection's thread."""

    @property
    def arraysize(self) -> int:
        return 1 if self._cursor is None else self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        if self._cursor is not None:
            self._cursor.arraysize = value


class _Connection(aiosqlite.Connection):
    def __init__(self, connector: Callable[[], sqlite3.Connection], writers: _Writers) -> None:
        super().__init__(connector, 64)
        self._writers = writers
        self._turn: asyncio.Lock | None = None  # held from the first write to the end
        self.transaction_open = False  # as of the last statement, commit or rollback

    async def take_write_turn(self) -> None:
        """Wait for the turn to write, unless this connection holds it already.

        Waiting longer than the busy timeout fails as SQLite would have.
        """
        if self._turn is not None:
            return
        lock = self._writers.lock()
        try:
            async with asyncio.timeout(self._writers.timeout):
                await lock.acquire()
        except TimeoutError:
            raise sqlite3.OperationalError("database is locked") from None
        self._turn = lock

    def end_write_turn(self) -> None:
        turn, self._turn = self._turn, None
        if turn is not None:
            turn.release()

    def cursor(self) -> _Cursor:  # type: ignore[override]
        return _Cursor(self)

    async def commit(self) -> None:
        try:
            await super().commit()
        finally:
            self._transaction_ended()

    async def rollback(self) -> None:
        """No hand-off when no transaction is open: SQLAlchemy rolls back at the end of
        every session and again when the pool takes the connection back."""
        if self._connection is not None and not self._connection.in_transaction:
            self._transaction_ended()
            return
        try:
            await super().rollback()
        finally:
            self._transaction_ended()

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            self._forget_transaction()

    def stop(self) -> asyncio.Future[Any] | None:
        """Also how SQLAlchemy terminates a connection it cannot close (a close that was
        cancelled, a connection garbage-collected): the thread closes it, rolling back."""
        try:
            return super().stop()
        finally:
            self._forget_transaction()

    def _forget_transaction(self) -> None:
        self.transaction_open = False
        self.end_write_turn()

    def _transaction_ended(self) -> None:
        if self._connection is not None and self._connection.in_transaction:
            return  # the commit failed (SQLITE_BUSY): the transaction is still open
        self._forget_transaction()


def connector(
    url: URL, *, busy_timeout: float = 5.0
) -> Callable[[], Coroutine[Any, Any, aiosqlite.Connection]]:
    """SQLAlchemy's `async_creator` for a sqlite+aiosqlite URL (its query options kept).

    Call it once per engine: its connections take turns to write (see above).
    `busy_timeout` (seconds): how long a writer waits for its turn.
    """
    dialect = url.get_dialect()()
    args, options = dialect.create_connect_args(url)
    database: str = args[0]
    kwargs: dict[str, Any] = dict(options)
    writers = _Writers(busy_timeout)

    async def connect() -> aiosqlite.Connection:
        connection = _Connection(lambda: sqlite3.connect(database, **kwargs), writers)
        connection._thread.daemon = True  # as SQLAlchemy does: never holds up the exit
        return await connection

    return connect
