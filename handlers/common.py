"""Commands available everywhere in a private chat: /start, /menu, /help, /cancel."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import Message

import texts
from keyboards.menu import main_menu_keyboard


async def cmd_start(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer(texts.GREETING_UNLINKED)
    await message.answer(texts.MAIN_MENU, reply_markup=main_menu_keyboard())


async def cmd_menu(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer(texts.MAIN_MENU, reply_markup=main_menu_keyboard())


async def cmd_help(message: Message) -> None:
    await message.answer(texts.HELP)


async def cmd_cancel(message: Message, state: FSMContext) -> None:
    if await state.get_state() is None:
        await message.answer(texts.NOTHING_TO_CANCEL)
        return
    await state.clear()
    await message.answer(texts.CANCELLED, reply_markup=main_menu_keyboard())


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.register(cmd_start, CommandStart())
    router.message.register(cmd_menu, Command("menu"))
    router.message.register(cmd_help, Command("help"))
    router.message.register(cmd_cancel, Command("cancel"))
    return router
