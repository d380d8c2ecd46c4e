"""Router-level filters shared by the flows."""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter
from aiogram.types import TelegramObject

from storage.models import TelegramUser


class LinkedUser(Filter):
    """Passes only a Telegram user linked to an account and not revoked."""

    async def __call__(self, event: TelegramObject, linked_user: TelegramUser | None = None) -> Any:
        return linked_user is not None
