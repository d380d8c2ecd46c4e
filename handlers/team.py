"""The admin's team in a private chat: invite links, the team list, revoke, hand over
admin; and joining by an invite link (/start <code>)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    CallbackQuery,
    Message,
)
from sqlalchemy.ext.asyncio import AsyncSession

import texts
from handlers.filters import LinkedUser
from handlers.live import edit_in_place, new_card
from keyboards.callbacks import TeamAction, TeamActionKind
from keyboards.menu import main_menu_keyboard
from keyboards.team import member_keyboard, team_keyboard
from services import team
from services.accounts import company_name
from settings import Settings
from storage.models import Role, TelegramUser

log = logging.getLogger(__name__)

REFUSALS = {
    "unknown": texts.INVITE_UNKNOWN,
    "used": texts.INVITE_USED,
    "expired": texts.INVITE_EXPIRED,
    "other_account": texts.INVITE_ALREADY_MEMBER_ELSEWHERE,
    "member": texts.INVITE_ALREADY_MEMBER,
    "not_connected": texts.INVITE_ACCOUNT_NOT_CONNECTED,
}


def inspector_commands() -> list[BotCommand]:
    return [BotCommand(command=name, description=text) for name, text in texts.COMMANDS.items()]


def admin_commands() -> list[BotCommand]:
    return inspector_commands() + [
        BotCommand(command=name, description=text) for name, text in texts.ADMIN_COMMANDS.items()
    ]


async def show_role_commands(bot: Bot, user_id: int, role: Role | None) -> None:
    """The admin's menu of commands has the team's; anyone else sees the default menu."""
    scope = BotCommandScopeChat(chat_id=user_id)
    try:
        if role == Role.ADMIN:
            await bot.set_my_commands(admin_commands(), scope=scope)
        else:
            await bot.delete_my_commands(scope=scope)
    except TelegramAPIError as exc:
        log.warning("Could not set the commands of user %s: %s", user_id, type(exc).__name__)


async def _tell(bot: Bot, user_id: int, text: str) -> None:
    try:
        await bot.send_message(user_id, text)
    except TelegramAPIError as exc:
        log.info("Could not tell user %s: %s", user_id, type(exc).__name__)


# --- joining by invite ---------------------------------------------------------------


async def start_with_invite(
    message: Message,
    command: CommandObject,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
) -> None:
    if message.from_user is None or not command.args:
        return
    result = await team.accept_invite(
        session,
        code=command.args,
        telegram_user_id=message.from_user.id,
        full_name=message.from_user.full_name,
        username=message.from_user.username,
        now=datetime.now(UTC),
    )
    if isinstance(result, team.InviteRefused):
        # Whatever the user was doing (e.g. a member mid-building) goes on.
        await message.answer(REFUSALS[result.reason])
        return
    await state.clear()
    await show_role_commands(bot, message.from_user.id, Role.INSPECTOR)
    await new_card(
        bot, message.chat.id, state, texts.joined(result.account_name), main_menu_keyboard()
    )


# --- the admin's commands --------------------------------------------------------------


async def _admin_or_refuse(
    message_or_callback: Message | CallbackQuery, user: TelegramUser
) -> bool:
    if user.role == Role.ADMIN:
        return True
    if isinstance(message_or_callback, CallbackQuery):
        await message_or_callback.answer(texts.ADMIN_ONLY, show_alert=True)
    else:
        await message_or_callback.answer(texts.ADMIN_ONLY)
    return False


async def _invite_text(
    bot: Bot, session: AsyncSession, user: TelegramUser, settings: Settings
) -> str:
    assert user.account_id is not None
    invite = await team.create_invite(
        session,
        account_id=user.account_id,
        created_by=user.id,
        ttl=timedelta(days=settings.INVITE_TTL_DAYS),
        now=datetime.now(UTC),
    )
    me = await bot.me()
    link = team.invite_link(me.username or "", invite.code)
    return texts.invite_created(link, invite.expires_at.astimezone(settings.tz))


async def cmd_invite(
    message: Message, bot: Bot, session: AsyncSession, linked_user: TelegramUser, settings: Settings
) -> None:
    if not await _admin_or_refuse(message, linked_user):
        return
    await message.answer(await _invite_text(bot, session, linked_user, settings))


async def cmd_team(message: Message, session: AsyncSession, linked_user: TelegramUser) -> None:
    if not await _admin_or_refuse(message, linked_user):
        return
    assert linked_user.account_id is not None
    members = await team.team(session, linked_user.account_id)
    await message.answer(texts.TEAM_TITLE, reply_markup=team_keyboard(members, linked_user.id))


async def team_action(
    callback: CallbackQuery,
    callback_data: TeamAction,
    bot: Bot,
    session: AsyncSession,
    linked_user: TelegramUser,
    settings: Settings,
) -> None:
    if not await _admin_or_refuse(callback, linked_user) or not isinstance(
        callback.message, Message
    ):
        return
    await callback.answer()
    account_id = linked_user.account_id
    assert account_id is not None
    message = callback.message
    action, member_id = callback_data.action, callback_data.member_id
    if action == TeamActionKind.INVITE:
        await message.answer(await _invite_text(bot, session, linked_user, settings))
        return
    member = await session.get(TelegramUser, member_id) if member_id else None
    active = member is not None and member.account_id == account_id and member.revoked_at is None
    if action in (TeamActionKind.MEMBER, TeamActionKind.REVOKE, TeamActionKind.HAND_OVER) and (
        member is None or not active
    ):
        await message.answer(texts.MEMBER_GONE)
        action = TeamActionKind.LIST
    if action == TeamActionKind.MEMBER and member is not None:
        await edit_in_place(
            message,
            texts.member_actions(member.full_name, member.username),
            member_keyboard(member.id),
        )
    elif action == TeamActionKind.REVOKE and member is not None:
        name = member.full_name
        if await team.revoke(
            session,
            account_id=account_id,
            admin_id=linked_user.id,
            member_id=member_id,
            now=datetime.now(UTC),
        ):
            await show_role_commands(bot, member_id, None)
            await _tell(bot, member_id, texts.ACCESS_REVOKED)
            await message.edit_text(texts.revoked(name))
    elif action == TeamActionKind.HAND_OVER and member is not None:
        name = member.full_name
        if await team.hand_over_admin(
            session, account_id=account_id, admin_id=linked_user.id, member_id=member_id
        ):
            await show_role_commands(bot, member_id, Role.ADMIN)
            await show_role_commands(bot, linked_user.id, Role.INSPECTOR)
            company = await company_name(session, account_id) or ""
            await _tell(bot, member_id, texts.became_admin(company))
            await message.edit_text(texts.admin_handed_over(name))
    else:
        members = await team.team(session, account_id)
        await edit_in_place(message, texts.TEAM_TITLE, team_keyboard(members, linked_user.id))


def create_router() -> Router:
    """Joining by invite (any user), then the admin's team commands (linked users)."""
    router = Router(name=__name__)
    router.message.register(
        start_with_invite,
        CommandStart(deep_link=True, magic=F.args.func(team.looks_like_invite)),
    )
    linked = Router(name=f"{__name__}.linked")
    linked.message.filter(LinkedUser())
    linked.callback_query.filter(LinkedUser())
    linked.message.register(cmd_invite, Command("invite"))
    linked.message.register(cmd_team, Command("team"))
    linked.callback_query.register(team_action, TeamAction.filter())
    router.include_router(linked)
    return router
