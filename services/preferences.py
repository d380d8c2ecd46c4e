"""Per-user display preferences («Настройки»), remembered across sessions."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import TelegramUser


async def toggle_show_previous(session: AsyncSession, user: TelegramUser) -> bool:
    """Switch the «Предыдущее показание» column for this user; returns the new value."""
    user.show_previous = not user.show_previous
    await session.commit()
    return user.show_previous
