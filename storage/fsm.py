"""A persistent aiogram FSM storage on the bot's own database.

State and data are kept as JSON text, never pickle: a restart, a new version of
the bot or another instance reads them back safely.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

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
from aiogram.fsm.storage.redis import RedisStorage
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import FsmRecord


def _state_name(state: StateType) -> str | None:
    if state is None:
        return None
    return state.state if isinstance(state, State) else str(state)


class SqlStorage(BaseStorage):
    """FSM storage in the `fsm_records` table; one short transaction per call."""

    def __init__(
        self,
        session_pool: async_sessionmaker[AsyncSession],
        key_builder: KeyBuilder | None = None,
    ) -> None:
        self._pool = session_pool
        self._keys = key_builder or DefaultKeyBuilder(with_destiny=True)

    async def close(self) -> None:
        """Nothing to release: the engine belongs to the application."""

    async def _upsert(self, key: StorageKey, values: dict[str, Any]) -> None:
        storage_key = self._keys.build(key)
        async with self._pool() as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            stmt = insert(FsmRecord).values(key=storage_key, **values)
            stmt = stmt.on_conflict_do_update(index_elements=[FsmRecord.key], set_=values)
            await session.execute(stmt)
            await session.commit()

    async def _load(self, key: StorageKey) -> FsmRecord | None:
        async with self._pool() as session:
            result = await session.execute(
                select(FsmRecord).where(FsmRecord.key == self._keys.build(key))
            )
            return result.scalar_one_or_none()

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        await self._upsert(key, {"state": _state_name(state)})

    async def get_state(self, key: StorageKey) -> str | None:
        record = await self._load(key)
        return record.state if record else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if not isinstance(data, dict):
            msg = f"Data must be a dict, got {type(data).__name__}"
            raise TypeError(msg)
        await self._upsert(key, {"data": json.dumps(data, ensure_ascii=False)})

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        record = await self._load(key)
        if record is None or not record.data:
            return {}
        loaded = json.loads(record.data)
        return loaded if isinstance(loaded, dict) else {}


def create_fsm(
    redis_url: str | None, session_pool: async_sessionmaker[AsyncSession]
) -> tuple[BaseStorage, BaseEventIsolation]:
    """FSM storage and event isolation chosen by settings alone.

    Without Redis: state in the bot's database and an in-process lock per chat,
    enough for one instance. With REDIS_URL: aiogram's RedisStorage and a Redis
    lock per chat, so several instances share users' states and never handle two
    updates of one chat at once. The keys carry the bot id, so two bots can share
    one Redis.
    """
    if not redis_url:
        return SqlStorage(session_pool), SimpleEventIsolation()
    redis_storage = RedisStorage.from_url(
        redis_url, key_builder=DefaultKeyBuilder(with_bot_id=True, with_destiny=True)
    )
    return redis_storage, redis_storage.create_isolation()
