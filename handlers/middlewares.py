"""Outer middlewares: one database session per update, and the current user."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import TelegramUser

# Run for every update: built once (session.get builds and keys its query each time).
_USER = select(TelegramUser).where(TelegramUser.id == bindparam("user_id"))


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


class CurrentUserMiddleware(BaseMiddleware):
    """Puts `user` (TelegramUser or None) into the handler data.

    A user counts as linked only with an account and without a revocation; the
    check runs on every update, so a revoked inspector loses access at once.
    """

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        from_user: User | None = data.get("event_from_user")
        session: AsyncSession = data["session"]
        user = (
            (await session.execute(_USER, {"user_id": from_user.id})).scalar_one_or_none()
            if from_user
            else None
        )
        data["user"] = user
        data["linked_user"] = (
            user if user is not None and user.account_id and user.revoked_at is None else None
        )
        return await handler(event, data)
