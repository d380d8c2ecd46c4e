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
    chat_id: int | None = None
    if update.message is not None:
        chat_id = update.message.chat.id
    elif update.callback_query is not None and update.callback_query.message is not None:
        chat_id = update.callback_query.message.chat.id
    if chat_id is not None:
        try:
            await bot.send_message(chat_id, texts.UNEXPECTED_ERROR)
        except TelegramAPIError:
            log.warning("Could not tell chat about the error")
    return True


def create_router() -> Router:
    router = Router(name=__name__)
    router.errors.register(on_error)
    return router
