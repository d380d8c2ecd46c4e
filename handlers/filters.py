"""Filters shared by the flows.

aiogram awaits a Filter subclass in place, but runs any other callable filter in a
worker thread (asyncio.to_thread): a bare magic filter (`F.text`) and a bare State
each cost a thread round trip per check, every update, more CPU than the check.
Routes therefore take Magic(F.…) and StateFilter(…), never a bare F.… or State.
"""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter
from aiogram.types import TelegramObject
from magic_filter import MagicFilter

from storage.models import TelegramUser


class LinkedUser(Filter):
    """Passes only a Telegram user linked to an account and not revoked."""

    async def __call__(self, event: TelegramObject, linked_user: TelegramUser | None = None) -> Any:
        return linked_user is not None


class Magic(Filter):
    """A magic filter on the event (`Magic(F.text)`), checked on the event loop."""

    def __init__(self, magic: MagicFilter) -> None:
        self.magic = magic

    async def __call__(self, event: TelegramObject) -> Any:
        return self.magic.resolve(event)
