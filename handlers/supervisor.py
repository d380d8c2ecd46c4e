"""The supervisor's group chat: /bind, /unbind, /status, a group's migration; and the
Telegram side of the group poster (services/group_posts.py)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiogram import Bot, F, Router
from aiogram.exceptions import (
    AiogramError,
    TelegramMigrateToChat,
    TelegramRetryAfter,
)
from aiogram.filters import Command
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardMarkup, Message
from sqlalchemy.ext.asyncio import AsyncSession

import texts
from billing_client.base import Billing
from billing_client.errors import BillingError
from handlers.filters import Magic
from handlers.live import edit_in_place
from keyboards.callbacks import StatusPageCallback
from keyboards.team import status_keyboard
from services import group_posts, groups
from services.credentials import AccountNotLinked, CredentialsProvider
from services.progress import current_period, period_progress, status_page
from settings import Settings
from storage.models import TelegramUser

log = logging.getLogger(__name__)

ADMIN_STATUSES = frozenset({"creator", "administrator"})


class TelegramGroupTransport:
    """Sends the poster's messages; turns aiogram's errors into the poster's."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def send_text(self, chat_id: int, text: str) -> None:
        await self._call(self._bot.send_message(chat_id, text))

    async def send_document(
        self, chat_id: int, data: bytes, filename: str, caption: str | None
    ) -> None:
        await self._call(
            self._bot.send_document(chat_id, BufferedInputFile(data, filename), caption=caption)
        )

    @staticmethod
    async def _call(request: object) -> None:
        try:
            await request  # type: ignore[misc]
        except TelegramRetryAfter as exc:
            raise group_posts.RetryAfter(float(exc.retry_after)) from exc
        except TelegramMigrateToChat as exc:
            raise group_posts.ChatMigrated(exc.migrate_to_chat_id) from exc
        except AiogramError as exc:
            raise group_posts.PostFailed(type(exc).__name__ + ": " + str(exc)[:200]) from exc


# --- who may bind ---------------------------------------------------------------------


async def _binding_account(
    message: Message, bot: Bot, session: AsyncSession, linked_user: TelegramUser | None
) -> str | None:
    """The account the sender may bind or unbind here, or None after a refusal."""
    chat_id = message.chat.id
    if message.sender_chat is not None and message.sender_chat.id == chat_id:
        # An anonymous administrator: only admins can post as the group itself.
        admins = await bot.get_chat_administrators(chat_id)
        accounts = await groups.linked_accounts(
            session, [a.user.id for a in admins if not a.user.is_bot]
        )
        if len(accounts) == 1:
            return accounts.pop()
        await message.answer(
            texts.BIND_AMBIGUOUS_ANONYMOUS if accounts else texts.BIND_NOT_LINKED_ANONYMOUS
        )
        return None
    if message.from_user is None:
        return None
    member = await bot.get_chat_member(chat_id, message.from_user.id)
    if member.status not in ADMIN_STATUSES:
        await message.answer(texts.BIND_NOT_GROUP_ADMIN)
        return None
    if linked_user is None or linked_user.account_id is None:
        await message.answer(texts.BIND_NOT_LINKED)
        return None
    return linked_user.account_id


async def cmd_bind(
    message: Message, bot: Bot, session: AsyncSession, linked_user: TelegramUser | None
) -> None:
    account_id = await _binding_account(message, bot, session, linked_user)
    if account_id is None:
        return
    result = await groups.bind(
        session,
        account_id=account_id,
        chat_id=message.chat.id,
        title=message.chat.title or "",
        bound_by=linked_user.id if linked_user else None,
        now=datetime.now(UTC),
    )
    text = texts.bound(result.company)
    if result.moved_from is not None:
        text += "\n" + texts.bound_elsewhere(result.company)
    await message.answer(text)


async def cmd_unbind(
    message: Message, bot: Bot, session: AsyncSession, linked_user: TelegramUser | None
) -> None:
    bound = await groups.bound_account(session, message.chat.id)
    if bound is None:
        await message.answer(texts.UNBIND_NOT_BOUND)
        return
    account_id = await _binding_account(message, bot, session, linked_user)
    if account_id is None:
        return
    if account_id != bound:
        await message.answer(texts.UNBIND_OTHER_ACCOUNT)
        return
    company = await groups.unbind(session, message.chat.id)
    await message.answer(texts.unbound(company or ""))


# --- /status ----------------------------------------------------------------------------


async def _status(
    chat_id: int,
    page: int,
    session: AsyncSession,
    billing: Billing,
    credentials: CredentialsProvider,
    settings: Settings,
) -> tuple[str, InlineKeyboardMarkup | None]:
    account_id = await groups.bound_account(session, chat_id)
    if account_id is None:
        return texts.GROUP_NOT_BOUND, None
    try:
        auth = await credentials.auth_for(session, account_id)
        buildings = (await billing.buildings(auth)).buildings
    except (BillingError, AccountNotLinked) as exc:
        log.warning("/status: billing failed for %s: %s", account_id, type(exc).__name__)
        return texts.STATUS_BILLING_DOWN, None
    period = current_period(datetime.now(UTC), settings.tz)
    items = await period_progress(session, account_id, buildings, period, settings.tz)
    shown = status_page(items, period, page)
    return texts.status_text(shown), status_keyboard(shown.page, shown.pages)


async def cmd_status(
    message: Message,
    session: AsyncSession,
    billing: Billing,
    credentials: CredentialsProvider,
    settings: Settings,
) -> None:
    text, markup = await _status(message.chat.id, 0, session, billing, credentials, settings)
    await message.answer(text, reply_markup=markup)


async def status_page_chosen(
    callback: CallbackQuery,
    callback_data: StatusPageCallback,
    session: AsyncSession,
    billing: Billing,
    credentials: CredentialsProvider,
    settings: Settings,
) -> None:
    await callback.answer()
    if not isinstance(callback.message, Message):
        return
    text, markup = await _status(
        callback.message.chat.id, callback_data.page, session, billing, credentials, settings
    )
    # A double tap on «След. ›» shows the page that is already on screen: not an error.
    await edit_in_place(callback.message, text, markup)


# --- the group changes -------------------------------------------------------------------


async def group_migrated(message: Message, session: AsyncSession) -> None:
    assert message.migrate_to_chat_id is not None
    moved = await group_posts.follow_migration(session, message.chat.id, message.migrate_to_chat_id)
    log.info(
        "Group %s migrated to %s%s",
        message.chat.id,
        message.migrate_to_chat_id,
        " (binding followed)" if moved else "",
    )


def create_router() -> Router:
    """Commands of the supervisor's group; scoped to groups and supergroups."""
    router = Router(name=__name__)
    groups = {"group", "supergroup"}
    router.message.filter(Magic(F.chat.type.in_(groups)))
    router.callback_query.filter(Magic(F.message.chat.type.in_(groups)))
    router.message.register(group_migrated, Magic(F.migrate_to_chat_id))
    router.message.register(cmd_bind, Command("bind"))
    router.message.register(cmd_unbind, Command("unbind"))
    router.message.register(cmd_status, Command("status"))
    router.callback_query.register(status_page_chosen, StatusPageCallback.filter())
    return router
