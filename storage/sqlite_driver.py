"""aiosqlite's API, with the statements run on the event loop's own thread.

aiosqlite runs each sqlite3 call on the connection's thread and wakes the event loop
through its self-pipe when the call is done. This bot's statements take SQLite tens of
microseconds (a row or a few, by index), and the hand-off cost more than the
statement. So statements and rollbacks run here, inline: in seven alternating pairs
of the benchmark's paced part (benchmarks/), the bot's CPU per update fell by a
median 7 % and its p99 latency from 27–65 ms to 25–48 ms. The few statements that
read a whole account's rows run on the connection's thread (`off_the_loop`).

A commit still goes to the connection's thread: with synchronous=FULL it waits for
the disk to confirm the write (a fraction of a millisecond here, far more on a slow
disk), and meanwhile the loop runs other updates. The thread also opens and closes
the connection. A commit or rollback with no transaction open is skipped. The rows,
`description`, `rowcount` and `lastrowid` are what SQLAlchemy reads after a
statement; sqlite3 keeps them on a closed cursor.

A statement never makes the loop wait for a lock. SQLite's busy handler would sleep
inside the statement and stop every other update with it, so the connection's own
busy timeout is 0. A statement that finds the database locked by another connection
is tried again after an asyncio sleep (1, 2, 5, 10 … 100 ms: SQLite's own steps)
until the engine's busy timeout has passed, then fails with SQLite's "database is
locked". SQLite reports "busy" before a statement has changed anything, so trying it
again is what its busy handler does; a read snapshot gone stale
(SQLITE_BUSY_SNAPSHOT) is not tried again, as SQLite does not either.

Writers take turns on an asyncio lock (`_Writers`), one per engine: SQLite lets one
transaction write at a time. Between the statements of one transaction the event
loop runs other updates; on the lock, the next writer starts the moment the previous
one commits, instead of meeting SQLite's lock and sleeping. Other processes on the
same file (a second engine, a migration) are kept apart by SQLite's own lock and the
retries above.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy.engine import URL

# The statements before which the sqlite3 module opens a transaction (its "DML").
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


# SQLite's busy handler sleeps these steps (seconds) between tries; the last repeats.
_BUSY_STEPS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.025, 0.025, 0.05, 0.05, 0.1)
# What SQLite's busy handler waits out: a lock held by another connection, a recovery.
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_BUSY_RECOVERY})

T = TypeVar("T")

_off_the_loop: ContextVar[bool] = ContextVar("sqlite_off_the_loop", default=False)


@contextlib.contextmanager
def off_the_loop() -> Iterator[None]:
    """Statements in this block run on the connection's thread, as aiosqlite runs them.

    For the few that read a whole account's rows: the supervisor's status of 10,000
    buildings counts a million slots, about 200 ms of SQLite, while the loop must go
    on answering the inspectors. Elsewhere than on SQLite it changes nothing.
    """
    token = _off_the_loop.set(True)
    try:
        yield
    finally:
        _off_the_loop.reset(token)


def _writes(sql: str) -> bool:
    return sql.lstrip()[:7].upper().startswith(_WRITES)


async def _patiently(
    call: Callable[[], T],
    patience: float,
    hand_off: Callable[[Callable[[], T]], Awaitable[T]] | None = None,
) -> T:
    """`call()` on the loop's thread, or through `hand_off` on the connection's; while
    the database is locked, again after an asyncio sleep, until `patience` seconds have
    passed (then SQLite's error)."""
    loop = asyncio.get_running_loop()
    steps = itertools.chain(_BUSY_STEPS, itertools.repeat(_BUSY_STEPS[-1]))
    deadline: float | None = None
    while True:
        try:
            return call() if hand_off is None else await hand_off(call)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode not in _BUSY_CODES:
                raise
            now = loop.time()
            deadline = now + patience if deadline is None else deadline
            if now >= deadline:
                raise
            await asyncio.sleep(min(next(steps), deadline - now))


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
        """The whole statement, its rows kept."""
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
        hand_off = connection._execute if _off_the_loop.get() else None
        try:
            self._rows = await _patiently(
                lambda: self._run(statement), connection.busy_timeout, hand_off
            )
        finally:
            if not connection.transaction_open:
                connection.end_write_turn()

    async def execute(self, sql: str, parameters: Any = None) -> _Cursor:
        await self._statement(sql, lambda cursor: cursor.execute(sql, parameters or ()))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> _Cursor:
        rows = list(parameters)  # a statement tried again needs its rows again
        await self._statement(sql, lambda cursor: cursor.executemany(sql, rows))
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
        """Closed already, when its statement ran."""

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

    @property
    def busy_timeout(self) -> float:
        """How long (seconds) a statement or commit waits for a lock another holds."""
        return self._writers.timeout

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
        """On the connection's thread: a commit waits for the disk (synchronous=FULL),
        and the loop must not. Nothing to commit: no hand-off."""
        if self._connection is not None and not self._connection.in_transaction:
            self._transaction_ended()
            return
        try:
            await _patiently(self._conn.commit, self.busy_timeout, self._execute)
        finally:
            self._transaction_ended()

    async def rollback(self) -> None:
        """No hand-off when no transaction is open: SQLAlchemy rolls back at the end of
        every session and again when the pool takes the connection back."""
        if self._connection is not None and not self._connection.in_transaction:
            self._transaction_ended()
            return
        try:
            self._conn.rollback()
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
    `busy_timeout` (seconds): how long a writer waits for its turn, and a statement
    for a lock another connection holds.
    """
    dialect = url.get_dialect()()
    args, options = dialect.create_connect_args(url)
    database: str = args[0]
    kwargs: dict[str, Any] = dict(options)
    # SQLite's own busy handler off: a lock is waited for in `_patiently`, not in SQLite.
    # Used on two threads: statements on the loop's, commits on the connection's. One
    # connection serves one transaction's calls one at a time, and SQLite's own mutex
    # serializes them in any case (sqlite3.threadsafety is 3).
    kwargs.update(timeout=0, check_same_thread=False)
    writers = _Writers(busy_timeout)

    async def connect() -> aiosqlite.Connection:
        connection = _Connection(lambda: sqlite3.connect(database, **kwargs), writers)
        connection._thread.daemon = True  # as SQLAlchemy does: never holds up the exit
        return await connection

    return connect
