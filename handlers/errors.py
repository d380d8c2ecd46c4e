"""The last line of defence: no traceback ever reaches a user."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.types import ErrorEvent

import texts

log = logging.getLogger(__name__)


async def on_error(event: ErrorEvent, bot: Bot) -> bool:
    update = event.update
    if isinstance(event.exception, TelegramForbiddenError):
        # The user blocked the bot (or left): nothing to tell them, and nobody else is affected.
        log.info("Update %s: the chat refuses the bot (%s)", update.update_id, update.event_type)
        return True
    # Only the type and id of the update: its content may hold a password.
    log.error(
        "Unhandled %s while handling update %s (%s)",
        type(event.exception).__name__,
        update.update_id,
        update.event_type,
        exc_info=(type(event.exception), event.exception, event.exception.__traceback__),
    )
    callback = update.callback_query
    if callback is not None:
        # Stop the button's spinner (unless the handler has answered it already).
        try:
            await bot.answer_callback_query(callback.id, texts.UNEXPECTED_ERROR_SHORT)
        except TelegramAPIError:
            log.debug("The failed button press was answered already")
    message = update.message or (callback.message if callback is not None else None)
    if message is None:
        return True
    if message.chat.type == "private":
        text = texts.UNEXPECTED_ERROR
    elif update.message is not None:
        # A command in the supervisor's group: a short word, not the private chat's /menu.
        text = texts.UNEXPECTED_ERROR_SHORT
    else:
        return True  # a button in the group: the toast above is enough, no noise for all
    try:
        await bot.send_message(message.chat.id, text)
    except TelegramAPIError:
        log.warning("Could not tell chat about the error")
    return True


def create_router() -> Router:
    router = Router(name=__name__)
    router.errors.register(on_error)
    return router
