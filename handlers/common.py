"""Commands available everywhere in a private chat, the main menu, and fallbacks."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

import texts
from handlers.filters import LinkedUser, Magic
from handlers.live import disarm_card, edit_card, new_card
from keyboards.callbacks import MenuAction, MenuCallback
from keyboards.menu import main_menu_keyboard
from storage.models import TelegramUser


async def cmd_menu(message: Message, bot: Bot, state: FSMContext) -> None:
    await disarm_card(bot, message.chat.id, state)
    await state.clear()
    await new_card(bot, message.chat.id, state, texts.MAIN_MENU, main_menu_keyboard())


async def on_home(callback: CallbackQuery, bot: Bot, state: FSMContext) -> None:
    await callback.answer()
    assert callback.message is not None
    await state.clear()
    await edit_card(
        bot,
        callback.message.chat.id,
        state,
        texts.MAIN_MENU,
        main_menu_keyboard(),
        message_id=callback.message.message_id,
    )


async def cmd_help(message: Message) -> None:
    await message.answer(texts.HELP)


async def cmd_cancel(message: Message, bot: Bot, state: FSMContext) -> None:
    if await state.get_state() is None:
        await message.answer(texts.NOTHING_TO_CANCEL)
        return
    await disarm_card(bot, message.chat.id, state)
    await state.clear()
    await new_card(bot, message.chat.id, state, texts.CANCELLED, main_menu_keyboard())


async def unknown_command(message: Message) -> None:
    await message.answer(texts.UNKNOWN_COMMAND)


async def anything_at_menu(message: Message, bot: Bot, state: FSMContext) -> None:
    await new_card(bot, message.chat.id, state, texts.USE_MENU, main_menu_keyboard())


async def not_linked(message: Message, user: TelegramUser | None = None) -> None:
    revoked = user is not None and user.revoked_at is not None
    await message.answer(texts.ACCESS_REVOKED if revoked else texts.NOT_LINKED)


async def not_linked_button(callback: CallbackQuery, user: TelegramUser | None = None) -> None:
    revoked = user is not None and user.revoked_at is not None
    await callback.answer(
        texts.ACCESS_REVOKED if revoked else texts.NOT_LINKED_SHORT, show_alert=True
    )


def create_router() -> Router:
    """Commands that work in any state; registered before the flows."""
    router = Router(name=__name__)
    router.message.register(cmd_help, Command("help"))
    router.message.register(cmd_cancel, Command("cancel"))
    linked = Router(name=f"{__name__}.linked")
    linked.message.filter(LinkedUser())
    linked.callback_query.filter(LinkedUser())
    linked.message.register(cmd_menu, Command("menu"))
    linked.callback_query.register(on_home, MenuCallback.filter(F.action == MenuAction.HOME))
    router.include_router(linked)
    return router


def create_fallback_router() -> Router:
    """What nobody else handled: registered after every flow."""
    router = Router(name=f"{__name__}.fallback")
    router.message.register(unknown_command, Magic(F.text.startswith("/")), LinkedUser())
    router.message.register(anything_at_menu, LinkedUser())
    router.message.register(not_linked)
    router.callback_query.register(not_linked_button)
    return router
