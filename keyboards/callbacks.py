"""Every CallbackData of the bot: typed fields, short versioned prefixes."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData


class MenuAction(StrEnum):
    SEND = "send"
    VIEW = "view"
    SETTINGS = "settings"


class MenuCallback(CallbackData, prefix="m1"):
    action: MenuAction
