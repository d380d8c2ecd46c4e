"""aiosqlite with one hand-off to the connection's thread per statement.

aiosqlite runs every call of the sqlite3 API on the connection's own thread, and
SQLAlchemy makes four such calls per statement (create the cursor, execute, fetch
all rows, close the cursor). Each hand-off wakes the event loop through its self-
pipe; in the benchmark (benchmarks/, profile) those wake-ups cost more of the bot's
CPU than SQLite itself. Here the cursor is created, executed, read to the end and
closed in one hand-off: a statement costs one round trip instead of four. The rows,
`description`, `rowcount` and `lastrowid` are what SQLAlchemy then reads; sqlite3
keeps them on a closed cursor. A rollback with no transaction open is skipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

import aiosqlite
from sqlalchemy.engine import URL


class _Cursor(aiosqlite.Cursor):
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.iter_chunk_size = connection._iter_chunk_size
        self._conn = connection
        self._cursor: sqlite3.Cursor = None  # type: ignore[assignment]  # made by execute
        self._rows: list[Any] = []

    def _run(self, statement: Callable[[sqlite3.Cursor], object]) -> list[Any]:
        """On the connection's thread: the whole statement, its rows kept."""
        cursor = self._conn._conn.cursor()
        try:
            statement(cursor)
            return cursor.fetchall() if cursor.description else []
        finally:
            self._cursor = cursor
            cursor.close()

    async def _statement(self, statement: Callable[[sqlite3.Cursor], object]) -> None:
        run: Callable[..., Awaitable[list[Any]]] = self._execute
        self._rows = await run(self._run, statement)

    async def execute(self, sql: str, parameters: Any = None) -> _Cursor:
        await self._statement(lambda cursor: cursor.execute(sql, parameters or ()))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> _Cursor:
        await self._statement(lambda cursor: cursor.executemany(sql, parameters))
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
    def cursor(self) -> _Cursor:  # type: ignore[override]
        return _Cursor(self)

    async def rollback(self) -> None:
        """No hand-off when no transaction is open: SQLAlchemy rolls back at the end of
        every session and again when the pool takes the connection back."""
        if self._connection is not None and not self._connection.in_transaction:
            return
        await super().rollback()


def connector(url: URL) -> Callable[[], Coroutine[Any, Any, aiosqlite.Connection]]:
    """SQLAlchemy's `async_creator` for a sqlite+aiosqlite URL (its query options kept)."""
    dialect = url.get_dialect()()
    args, options = dialect.create_connect_args(url)
    database: str = args[0]
    kwargs: dict[str, Any] = dict(options)

    async def connect() -> aiosqlite.Connection:
        connection = _Connection(lambda: sqlite3.connect(database, **kwargs), 64)
        connection._thread.daemon = True  # as SQLAlchemy does: never holds up the exit
        return await connection

    return connect
