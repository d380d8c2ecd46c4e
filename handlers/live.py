"""The one message with live buttons per flow (the "card"), kept in FSM data.

Old cards lose their buttons or disappear, so an old button can't be pressed by
mistake; Telegram's "not modified" / "not found" answers never break a flow.

Of Telegram's answer to a card's call the bot keeps only the card's id, so sending a
card and editing its text read the answer as plain JSON (`_SendCard`, `_EditCard`).
aiogram would build its Message model of it (the text's entities, the keyboard, the
chat, the sender): about 5 % of the bot's CPU per reading (benchmarks/).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.methods import EditMessageText, SendMessage
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

log = logging.getLogger(__name__)

CARD_KEY = "card_id"


class _SendCard(SendMessage):
    """sendMessage with its answer read as plain JSON (see the module's doc)."""

    __returning__ = dict  # type: ignore[assignment]


class _EditCard(EditMessageText):
    """editMessageText with its answer read as plain JSON; nothing of it is used."""

    __returning__ = dict  # type: ignore[assignment]


async def _send_card(bot: Bot, chat_id: int, text: str, markup: InlineKeyboardMarkup | None) -> int:
    """Send a card; its message id."""
    answer: Any = await bot(_SendCard(chat_id=chat_id, text=text, reply_markup=markup))
    return int(answer["message_id"])


async def _edit_card(
    bot: Bot, chat_id: int, message_id: int, text: str, markup: InlineKeyboardMarkup | None
) -> None:
    await bot(_EditCard(chat_id=chat_id, message_id=message_id, text=text, reply_markup=markup))


async def retire_card(
    bot: Bot, chat_id: int, state: FSMContext, *, becomes: str | None, forget: bool = True
) -> None:
    """Turn the live card into a plain line (`becomes`), or delete it when None."""
    card_id = (await state.get_data()).get(CARD_KEY)
    if not card_id:
        return
    await _retire(bot, chat_id, card_id, becomes)
    if forget:
        await state.update_data({CARD_KEY: None})


async def _retire(bot: Bot, chat_id: int, card_id: int, becomes: str | None) -> None:
    try:
        if becomes is None:
            await bot.delete_message(chat_id, card_id)
        else:
            await _edit_card(bot, chat_id, card_id, becomes, None)
    except TelegramBadRequest as exc:
        log.debug("Old card %s not retired: %s", card_id, exc.message)


async def disarm_card(bot: Bot, chat_id: int, state: FSMContext) -> None:
    """Take the buttons off the live card (before the flow's state is cleared)."""
    card_id = (await state.get_data()).get(CARD_KEY)
    if not card_id:
        return
    try:
        await bot.edit_message_reply_markup(chat_id=chat_id, message_id=card_id, reply_markup=None)
    except TelegramBadRequest as exc:
        log.debug("Old card %s not disarmed: %s", card_id, exc.message)
    await state.update_data({CARD_KEY: None})


async def new_card(
    bot: Bot,
    chat_id: int,
    state: FSMContext,
    text: str,
    markup: InlineKeyboardMarkup | None,
    *,
    old_becomes: str | None = None,
) -> int:
    """Retire the current card and send a new one at the bottom of the chat.

    The two calls go out together: the answer reaches the inspector one Bot API
    round trip sooner than if the old card were retired first.
    """
    card_id = (await state.get_data()).get(CARD_KEY)
    sending = _send_card(bot, chat_id, text, markup)
    if not card_id:
        sent_id = await sending
    else:
        retired, sent = await asyncio.gather(
            _retire(bot, chat_id, card_id, old_becomes), sending, return_exceptions=True
        )
        if isinstance(sent, BaseException):
            if retired is None:
                await state.update_data({CARD_KEY: None})
            raise sent
        if retired is not None:
            # The new card is there and the flow goes on; the old one keeps its
            # buttons, which answer as any stale card's do.
            log.warning("Old card %s not retired: %s", card_id, type(retired).__name__)
        sent_id = sent
    await state.update_data({CARD_KEY: sent_id})
    return sent_id


async def edit_card(
    bot: Bot,
    chat_id: int,
    state: FSMContext,
    text: str,
    markup: InlineKeyboardMarkup | None,
    *,
    message_id: int | None = None,
) -> None:
    """Edit the card in place; if it is gone, send a new one instead."""
    data = await state.get_data()
    card_id = message_id or data.get(CARD_KEY)
    if card_id:
        try:
            await _edit_card(bot, chat_id, card_id, text, markup)
            if card_id != data.get(CARD_KEY):
                await state.update_data({CARD_KEY: card_id})
            return
        except TelegramBadRequest as exc:
            if "not modified" in exc.message:
                return
            log.debug("Card %s not edited (%s): sending a new one", card_id, exc.message)
    await state.update_data({CARD_KEY: await _send_card(bot, chat_id, text, markup)})


async def take_card(callback: CallbackQuery, state: FSMContext) -> int:
    """Answer a press and make the pressed message the live card; its chat id."""
    await callback.answer()
    assert callback.message is not None
    await state.update_data({CARD_KEY: callback.message.message_id})
    return callback.message.chat.id


async def edit_in_place(message: Message, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """Edit a message a button was pressed on (a list, a page) to `text`.

    A press that changes nothing (a double tap, the row already shown) gets Telegram's
    "not modified": the message is already right, so that is not an error.
    """
    try:
        await message.edit_text(text, reply_markup=markup)
    except TelegramBadRequest as exc:
        if "not modified" not in exc.message:
            raise
