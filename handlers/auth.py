"""Linking a Telegram user to the company's account: /start, login, password, /logout.

The login is kept in FSM data between the two messages (it is not a secret); the
password goes from the message straight to the service as a SecretStr and is
deleted from the chat before billing is asked.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import Command, CommandStart, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import Message
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

import texts
from billing_client.base import Billing
from handlers.filters import Magic
from handlers.live import new_card
from handlers.team import show_role_commands
from keyboards.menu import main_menu_keyboard
from services.accounts import (
    MAX_INPUT_LENGTH,
    BillingDown,
    Linked,
    LinkResult,
    RevokedByAdmin,
    Throttled,
    WrongCredentials,
    company_name,
    link_account,
    logout,
    minutes_until_login_allowed,
)
from services.credentials import CredentialsProvider
from storage.models import TelegramUser

log = logging.getLogger(__name__)


class Login(StatesGroup):
    entering_login = State()
    entering_password = State()


# --- /start and /logout ------------------------------------------------------


async def cmd_start(
    message: Message,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    linked_user: TelegramUser | None,
    credentials: CredentialsProvider,
) -> None:
    await state.clear()
    # A linked user logs in again when the company's stored password can't be used
    # (erased, stored with a key SECRET_KEY no longer has, or refused by billing): what
    # the bot's answer asks for.
    if (
        linked_user is None
        or linked_user.account_id is None
        or not await credentials.usable(session, linked_user.account_id)
    ):
        await state.set_state(Login.entering_login)
        await message.answer(texts.LOGIN_GREETING)
        return
    company = await company_name(session, linked_user.account_id)
    text = texts.WELCOME_BACK.format(company=texts.esc(company or ""))
    await new_card(bot, message.chat.id, state, text, main_menu_keyboard())


async def cmd_logout(
    message: Message,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    credentials: CredentialsProvider,
    linked_user: TelegramUser | None,
) -> None:
    await state.clear()
    if linked_user is None:
        await message.answer(texts.NOT_LOGGED_IN)
        return
    await logout(session, credentials, linked_user.id)
    # An admin's menu would still offer /team and /invite.
    await show_role_commands(bot, message.chat.id, None)
    await message.answer(texts.LOGGED_OUT)


# --- the login ---------------------------------------------------------------


async def login_entered(
    message: Message, bot: Bot, state: FSMContext, session: AsyncSession
) -> None:
    refused_at = (await state.get_data()).get("refused_at")
    if isinstance(refused_at, int) and message.message_id < refused_at:
        # Sent before the refusal was shown, so not a login typed in reply to it: in a
        # burst of /start, login and password this is the password.
        await delete_password_message(bot, message)
        await message.answer(texts.SENT_BEFORE_LOGIN_REFUSED)
        return
    login = (message.text or "").strip()
    if len(login) > MAX_INPUT_LENGTH:
        # No login is that long: a pasted note, which may hold the password too.
        await delete_password_message(bot, message)
        await refuse_login(message, state, texts.LOGIN_TOO_LONG.format(limit=MAX_INPUT_LENGTH))
        return
    if message.from_user is None:
        return
    # Said now rather than after the password: no reason to make them type it for nothing.
    wait = await minutes_until_login_allowed(
        session, telegram_user_id=message.from_user.id, login=login, now=datetime.now(UTC)
    )
    if wait is not None:
        await refuse_login(message, state, texts.LOGIN_THROTTLED.format(minutes=wait))
        return
    await state.update_data(login=login)
    await state.set_state(Login.entering_password)
    await message.answer(texts.ASK_PASSWORD)


async def login_not_text(message: Message, bot: Bot, state: FSMContext) -> None:
    # A caption or a photo of a note may carry the password with the login.
    await delete_password_message(bot, message)
    await refuse_login(message, state, texts.LOGIN_EXPECTED_AS_TEXT)


async def refuse_login(message: Message, state: FSMContext, text: str) -> None:
    """Answer a login step that failed; the user is (back) at the login step.

    The answer's id is kept: login_entered deletes, unstored, a text sent before it.
    """
    answer = await message.answer(text)
    await state.update_data(refused_at=answer.message_id)


# --- the password ------------------------------------------------------------


async def delete_password_message(bot: Bot, message: Message) -> None:
    """Delete the message at once; a failure must not stop the login."""
    try:
        await bot.delete_message(message.chat.id, message.message_id)
    except TelegramBadRequest as exc:
        if "message to delete not found" not in exc.message:
            log.warning("Could not delete a password message: %s", exc.message)
    except TelegramAPIError as exc:
        log.warning("Could not delete a password message: %s", type(exc).__name__)


async def password_entered(
    message: Message,
    state: FSMContext,
    bot: Bot,
    session: AsyncSession,
    billing: Billing,
    credentials: CredentialsProvider,
) -> None:
    await delete_password_message(bot, message)
    password = SecretStr(message.text or "")
    if len(password.get_secret_value()) > MAX_INPUT_LENGTH:
        await message.answer(texts.PASSWORD_TOO_LONG.format(limit=MAX_INPUT_LENGTH))
        return
    login = (await state.get_data()).get("login")
    if not isinstance(login, str) or message.from_user is None:
        # FSM data lost (e.g. an old storage row): ask from the start, not fail.
        await state.set_state(Login.entering_login)
        await refuse_login(message, state, texts.LOGIN_FORGOTTEN)
        return
    result = await link_account(
        session,
        billing,
        credentials,
        telegram_user_id=message.from_user.id,
        full_name=message.from_user.full_name,
        username=message.from_user.username,
        login=login,
        password=password,
        now=datetime.now(UTC),
    )
    await show_link_result(message, bot, state, result)


async def password_not_text(message: Message, bot: Bot) -> None:
    # A caption, a photo of a note or a voice message may carry the password too.
    await delete_password_message(bot, message)
    await message.answer(texts.PASSWORD_EXPECTED_AS_TEXT)


# --- after a crash -------------------------------------------------------------


def may_hold_password(state: str | None, linked: bool) -> bool:
    """Whether a user's next text may be a password: the inbox then keeps it redacted.

    Everything an unlinked user types counts (their login and password may come in
    one burst, before the login step has even run), and so does the login flow.
    """
    return not linked or state in {Login.entering_login.state, Login.entering_password.state}


async def message_lost(
    bot: Bot,
    chat_id: int,
    message_id: int,
    state: FSMContext,
    *,
    state_at_start: str | None,
    started: bool,
    invite: bool = False,
    invite_accepted: bool = False,
) -> None:
    """A redacted message was not finished before the bot died: delete it, ask again.

    If its handling had begun and the user's state has moved on since, it was
    handled (only the done mark was lost): then it is only deleted. `invite`: it was
    an invite link's /start, which only opening the link again can repeat;
    `invite_accepted`: the user took an invite after it came, so it was handled (the
    link is used now), and the user is told they are in.
    """
    try:
        await bot.delete_message(chat_id, message_id)
    except TelegramBadRequest:
        pass  # already deleted by the handler before the crash, or too old
    except TelegramAPIError as exc:
        log.warning("Could not delete a redacted message: %s", type(exc).__name__)
    if invite_accepted:
        await bot.send_message(chat_id, texts.INVITE_ACCEPTED_BEFORE_RESTART)
        return
    current = await state.get_state()
    if started and current != state_at_start:
        return
    if invite:
        await bot.send_message(chat_id, texts.INVITE_LOST_IN_RESTART)
    elif current == Login.entering_password.state:
        await bot.send_message(chat_id, texts.PASSWORD_LOST_IN_RESTART)
    elif current == Login.entering_login.state:
        await bot.send_message(chat_id, texts.LOGIN_LOST_IN_RESTART)
    elif current is None:
        await bot.send_message(chat_id, texts.MESSAGE_LOST_IN_RESTART)


# --- outcomes ----------------------------------------------------------------


async def show_link_result(
    message: Message, bot: Bot, state: FSMContext, result: LinkResult
) -> None:
    match result:
        case Linked():
            await login_succeeded(message, bot, state, result)
        case WrongCredentials():
            await login_invalid(message, state, result)
        case Throttled():
            await login_throttled(message, state, result)
        case BillingDown():
            await billing_unavailable(message)
        case RevokedByAdmin():
            await state.clear()
            await message.answer(texts.RELINK_REVOKED)


async def login_succeeded(message: Message, bot: Bot, state: FSMContext, result: Linked) -> None:
    await state.clear()
    await show_role_commands(bot, message.chat.id, result.role)
    text = texts.LOGGED_IN.format(company=texts.esc(result.account_name))
    # The menu is the flow's card, so the next flow retires its buttons.
    await new_card(bot, message.chat.id, state, text, main_menu_keyboard())


async def login_invalid(message: Message, state: FSMContext, result: WrongCredentials) -> None:
    # Back to the login: it may be the login that is wrong, not the password.
    await state.set_data({})
    await state.set_state(Login.entering_login)
    if result.attempts_left == 0 and result.retry_in_minutes is not None:
        text = texts.LOGIN_INVALID_LAST.format(minutes=result.retry_in_minutes)
    else:
        text = texts.LOGIN_INVALID.format(attempts_left=result.attempts_left)
    await refuse_login(message, state, text)


async def login_throttled(message: Message, state: FSMContext, result: Throttled) -> None:
    await state.set_data({})
    await state.set_state(Login.entering_login)
    await refuse_login(message, state, texts.LOGIN_THROTTLED.format(minutes=result.minutes))


async def billing_unavailable(message: Message) -> None:
    # State and login kept: the next message is simply the password again.
    await message.answer(texts.LOGIN_BILLING_UNAVAILABLE)


def create_router() -> Router:
    """/start, /logout and the two login steps; /cancel, /menu, /help stay in common."""
    router = Router(name=__name__)
    router.message.register(cmd_start, CommandStart())
    router.message.register(cmd_logout, Command("logout"))
    # Other commands fall through to their own handlers whatever the router order:
    # the admin's /team and /invite too, which are not a login either.
    other_commands = ~Command(*texts.COMMANDS, *texts.ADMIN_COMMANDS)
    entering_login, entering_password = (
        StateFilter(Login.entering_login),
        StateFilter(Login.entering_password),
    )
    text, not_text = Magic(F.text), Magic(~F.text)
    router.message.register(login_entered, entering_login, text, other_commands)
    router.message.register(login_not_text, entering_login, not_text)
    router.message.register(password_entered, entering_password, text, other_commands)
    router.message.register(password_not_text, entering_password, not_text)
    return router


__all__ = ["Login", "create_router", "may_hold_password", "message_lost"]
