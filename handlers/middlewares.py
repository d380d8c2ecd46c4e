"""Outer middlewares: one database session per update."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


class DbSessionMiddleware(BaseMiddleware):
    """Opens one AsyncSession for the update; services commit, nothing else does."""

    def __init__(self, session_pool: async_sessionmaker[AsyncSession]) -> None:
        self._pool = session_pool

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        async with self._pool() as session:
            data["session"] = session
            return await handler(event, data)
