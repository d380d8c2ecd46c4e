"""A persistent aiogram FSM storage on the bot's own database.

State and data are kept as JSON text, never pickle: a restart or a new version of
the bot reads them back safely.

Reads are answered from memory after a key's first read. aiogram reads a user's
state and data five to ten times per update and SQLAlchemy over aiosqlite costs
about five thread hand-offs per query, so reading through the database was the
larger part of the bot's CPU per update (benchmarks/, profile). This is safe
because the process is the only writer of its records: one bot process per
database, the same assumption as its in-process event isolation (several
instances need the Redis storage). A write that would store what is already
stored is not made.

Within an update (`SqlStorage.collecting`, opened by the update runner) a handler
sets the state and data several times (position, pending value, card id): those
writes change memory only, and the runner writes them once, in the transaction
that marks the update done (storage/done_marks.py): the update's FSM changes and its
done mark are committed together. Outside an update each write goes to the database
before it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import (
    BaseEventIsolation,
    BaseStorage,
    DefaultKeyBuilder,
    KeyBuilder,
    StateType,
    StorageKey,
)
from aiogram.fsm.storage.memory import SimpleEventIsolation
from sqlalchemy import Connection, Executable, Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.engine import engine_of, in_transaction, upsert_insert
from storage.models import FsmRecord

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

# A chat's Redis lock lives this long unless its holder renews it (every third of it).
# A crashed instance therefore blocks its chats only this long, never a minute.
CHAT_LOCK_TTL = 5.0
# An update waits this long for its chat; longer than a handler's slowest billing call
# with all its retries, so only a chat held by a stuck holder gives up.
CHAT_LOCK_WAIT = 120.0


def _state_name(state: StateType) -> str | None:
    if state is None:
        return None
    return state.state if isinstance(state, State) else str(state)


@dataclass(slots=True)
class _Record:
    state: str | None
    data: str  # JSON text: every read parses its own copy, so callers may change it


@dataclass
class FsmChanges:
    """The records one update changed, to be written when it ends."""

    records: dict[str, _Record] = field(default_factory=dict)
    open: bool = True  # False once collected: a task the update started writes itself


_changes: ContextVar[FsmChanges | None] = ContextVar("fsm_changes", default=None)


FSM_RECORDS: Table = FsmRecord.__table__  # type: ignore[assignment]


@functools.cache
def _upsert_statement(dialect: str) -> Executable:
    """Insert or replace records (a row of parameters each); run once per update, so
    built once per dialect, not per call."""
    insert = upsert_insert(dialect)(FSM_RECORDS)
    return insert.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=[FSM_RECORDS.c.key],
        # ON CONFLICT's update does not apply the column's onupdate: set it here.
        set_={
            "state": insert.excluded.state,
            "data": insert.excluded.data,
            "updated_at": func.now(),
        },
    )


def _upsert_in(connection: Connection, records: Mapping[str, _Record]) -> None:
    rows = [{"key": key, "state": r.state, "data": r.data} for key, r in records.items()]
    connection.execute(_upsert_statement(connection.dialect.name), rows)


class SqlStorage(BaseStorage):
    """FSM storage in the `fsm_records` table: reads from memory; a write is its own
    short transaction, or waits in `collecting` for the runner's `save`."""

    def __init__(
        self,
        session_pool: async_sessionmaker[AsyncSession],
        key_builder: KeyBuilder | None = None,
    ) -> None:
        self._pool = session_pool
        self._engine = engine_of(session_pool)
        self._keys = key_builder or DefaultKeyBuilder(with_destiny=True)
        self._cache: dict[str, _Record] = {}

    async def close(self) -> None:
        """Nothing to release: the engine belongs to the application."""

    async def _upsert(self, storage_key: str, record: _Record) -> None:
        await in_transaction(self._engine, lambda c: _upsert_in(c, {storage_key: record}))

    @contextlib.contextmanager
    def collecting(self) -> Iterator[FsmChanges]:
        """Within this block (one update's task), writes change memory only."""
        changes = FsmChanges()
        token = _changes.set(changes)
        try:
            yield changes
        finally:
            _changes.reset(token)
            changes.open = False

    def save(self, connection: Connection, changes: Iterable[FsmChanges]) -> None:
        """Write the changes collected by updates, in their order (a key's later record
        wins), in the caller's transaction: one statement for all of them."""
        records: dict[str, _Record] = {}
        for update_changes in changes:
            records.update(update_changes.records)
        if records:
            _upsert_in(connection, records)

    async def _write(self, storage_key: str, record: _Record, updated: _Record) -> None:
        """Store `updated` as the key's record (the cached `record` takes its content)."""
        changes = _changes.get()
        if changes is None or not changes.open:
            await self._upsert(storage_key, updated)
        else:
            changes.records[storage_key] = record
        record.state, record.data = updated.state, updated.data

    async def _record(self, key: StorageKey) -> tuple[str, _Record]:
        storage_key = self._keys.build(key)
        record = self._cache.get(storage_key)
        if record is None:
            async with self._pool() as session:
                row = (
                    await session.execute(
                        select(FsmRecord.state, FsmRecord.data).where(FsmRecord.key == storage_key)
                    )
                ).first()
            record = _Record(row.state, row.data or "{}") if row else _Record(None, "{}")
            self._cache[storage_key] = record
        return storage_key, record

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        storage_key, record = await self._record(key)
        name = _state_name(state)
        if name != record.state:
            await self._write(storage_key, record, replace(record, state=name))

    async def get_state(self, key: StorageKey) -> str | None:
        _, record = await self._record(key)
        return record.state

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if not isinstance(data, dict):
            msg = f"Data must be a dict, got {type(data).__name__}"
            raise TypeError(msg)
        storage_key, record = await self._record(key)
        text = json.dumps(data, ensure_ascii=False)
        if text != record.data:
            await self._write(storage_key, record, replace(record, data=text))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        _, record = await self._record(key)
        loaded = json.loads(record.data)
        return loaded if isinstance(loaded, dict) else {}


class ChatLockTimeout(Exception):
    """Another update held the chat longer than `RenewedRedisIsolation.wait`."""


class RenewedRedisIsolation(BaseEventIsolation):
    """One update of a chat at a time across all instances: a Redis lock per chat.

    aiogram's RedisEventIsolation holds its lock for a fixed 60 s, so a killed
    instance's chats stay silent for a minute, and a handler slower than that loses
    the lock. Here the lock lives `ttl` seconds and a task renews it every third of
    that while the handler runs: a crash frees the chat within `ttl`, and a long
    handler keeps it. A lock that still expired (Redis unreachable longer than `ttl`)
    is logged; the update goes on, and releasing what is no longer ours is no error.
    An update that cannot get the chat within `wait` seconds raises ChatLockTimeout:
    it is not handled; the errors router logs it and tells the user something went wrong.
    """

    def __init__(
        self,
        redis: Redis,
        key_builder: KeyBuilder | None = None,
        *,
        ttl: float = CHAT_LOCK_TTL,
        poll: float = 0.05,
        wait: float = CHAT_LOCK_WAIT,
    ) -> None:
        self.redis = redis
        self.key_builder = key_builder or DefaultKeyBuilder()
        self.ttl = ttl
        self.wait = wait
        self._poll = poll

    @contextlib.asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncIterator[None]:
        from redis.exceptions import RedisError

        # thread_local=False: the renewing task must see the token the acquirer set.
        chat_lock = self.redis.lock(
            self.key_builder.build(key, "lock"),
            timeout=self.ttl,
            sleep=self._poll,
            blocking_timeout=self.wait,
            thread_local=False,
        )
        if not await chat_lock.acquire():
            msg = f"chat lock still held by another update after {self.wait:g} s"
            raise ChatLockTimeout(msg)
        released = asyncio.Event()
        renewing = asyncio.create_task(self._renew(chat_lock, released), name="chat-lock-renewal")
        try:
            yield None
        finally:
            # The event, not only the cancel, ends the renewal: on Python 3.11 redis-py's
            # asyncio.wait_for around each command drops a cancel that arrives as the
            # reply does (CPython gh-86296), and the renewal then kept the chat forever.
            released.set()
            renewing.cancel()
            await asyncio.wait({renewing}, timeout=self.ttl)
            try:
                await chat_lock.release()
            except RedisError as exc:  # expired and maybe taken by another instance
                log.warning("Chat lock not released: %s", type(exc).__name__)

    async def _renew(self, chat_lock: Any, released: asyncio.Event) -> None:
        from redis.exceptions import LockNotOwnedError, RedisError

        while not released.is_set():
            await asyncio.sleep(self.ttl / 3)
            if released.is_set():
                return
            try:
                await chat_lock.reacquire()
            except LockNotOwnedError:
                log.warning("Chat lock expired while its update was handled")
                return
            except RedisError as exc:  # Redis briefly unreachable: try again next round
                log.warning("Chat lock not renewed: %s", type(exc).__name__)

    async def close(self) -> None:
        """Nothing to release: the Redis client belongs to the storage."""


def create_fsm(
    redis_url: str | None, session_pool: async_sessionmaker[AsyncSession]
) -> tuple[BaseStorage, BaseEventIsolation]:
    """FSM storage and event isolation chosen by settings alone.

    Without Redis: state in the bot's database and an in-process lock per chat,
    enough for one instance. With REDIS_URL: aiogram's RedisStorage and a renewed
    Redis lock per chat (RenewedRedisIsolation), so several instances share users'
    states and never handle two updates of one chat at once. The keys carry the
    bot id, so two bots can share one Redis.
    """
    if not redis_url:
        return SqlStorage(session_pool), SimpleEventIsolation()
    # Imported only with Redis: a single instance does not carry the client's memory.
    from aiogram.fsm.storage.redis import RedisStorage

    redis_storage = RedisStorage.from_url(
        redis_url, key_builder=DefaultKeyBuilder(with_bot_id=True, with_destiny=True)
    )
    return redis_storage, RenewedRedisIsolation(
        redis_storage.redis, key_builder=redis_storage.key_builder
    )
