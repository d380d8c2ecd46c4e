"""The main menu."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

import texts
from keyboards.callbacks import MenuAction, MenuCallback


def main_menu_keyboard() -> InlineKeyboardMarkup:
    """The three menu items of the seed, one per row (easy to hit on a phone)."""
    items = [
        (texts.MENU_SEND, MenuAction.SEND),
        (texts.MENU_VIEW, MenuAction.VIEW),
        (texts.MENU_SETTINGS, MenuAction.SETTINGS),
    ]
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=label, callback_data=MenuCallback(action=action).pack())]
            for label, action in items
        ]
    )
