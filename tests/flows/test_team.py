"""The admin's team end to end: invite links, revoking, handing over admin, menus."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

import texts
from services.credentials import CredentialsProvider
from storage.models import Account, Invite, Role, TelegramUser
from tests.conftest import App
from tests.flows.test_supervisor import first_value, log_in, open_building
from tests.harness.phone import Phone

LINK_RE = re.compile(r"https://t\.me/meters_test_bot\?start=([A-Za-z0-9_-]+)")


async def invite_code(admin: Phone) -> str:
    reply = await admin.ask("/invite", until="Ссылка-приглашение")
    match = LINK_RE.search(reply.text)
    assert match, reply.text
    return match.group(1)


async def join(
    app: App, code: str, user_id: int, name: str, until: str = "Добро пожаловать"
) -> Phone:
    phone = app.tg.user(user_id=user_id, first_name=name, username=f"user{user_id}")
    await phone.send_command("/start", args=code)
    await phone.wait_for(until)
    return phone


async def user_row(app: App, user_id: int) -> TelegramUser | None:
    async with app.session_pool() as session:
        return await session.get(TelegramUser, user_id)


def command_names(app: App, user_id: int) -> set[str]:
    commands = app.tg.sent_commands(scope={"type": "chat", "chat_id": user_id})
    return {command["command"] for command in commands}


async def test_an_invite_lets_an_inspector_in_once_without_the_password(app: App) -> None:
    admin = await log_in(app)
    assert {"team", "invite"} <= command_names(app, 1001)  # the admin's menu has the team
    code = await invite_code(admin)
    assert len(code) >= 20
    await admin.send_command("/start", args=code)  # the admin checks the link
    await admin.wait_for("Ссылка осталась неиспользованной")

    inspector = await join(app, code, 1002, "Иван")
    assert "контролёр" in inspector.last_bot_message().text  # type: ignore[union-attr]
    await inspector.tap("Передача показаний по дому", until="Выберите дом")
    row = await user_row(app, 1002)
    assert row is not None and row.role == Role.INSPECTOR and row.account_id is not None
    assert "team" not in command_names(app, 1002)

    await join(app, code, 1003, "Пётр", until="уже использована")
    stranger = await user_row(app, 1003)
    assert stranger is None or stranger.account_id is None

    refusal = await inspector.ask("/team", until="только администратор")
    assert refusal


async def test_an_expired_or_unknown_invite_is_refused(app: App) -> None:
    admin = await log_in(app)
    code = await invite_code(admin)
    async with app.session_pool() as session:
        await session.execute(
            update(Invite).values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        await session.commit()
    await join(app, code, 1002, "Иван", until="Срок действия ссылки-приглашения истёк")
    await join(app, "A" * 22, 1003, "Пётр", until="не найдена")


async def test_a_revoked_inspector_loses_access_at_once_and_only_an_invite_brings_them_back(
    app: App,
) -> None:
    admin = await log_in(app)
    inspector = await join(app, await invite_code(admin), 1002, "Иван")
    await inspector.tap("Передача показаний по дому", until="Выберите дом")

    await admin.ask("/team", until="Команда")
    await admin.tap("Иван (@user1002)", until="Что сделать?")
    await admin.tap("Закрыть доступ", until="Доступ закрыт")
    await inspector.wait_for("закрыл вам доступ", since=0)

    reply = await inspector.ask("авиастроителей", until="закрыл вам доступ")
    assert "новой ссылке-приглашению" in reply.text
    await inspector.send_command("/start")
    await inspector.wait_for("логин")
    await inspector.ask("demo", until="пароль")
    reply = await inspector.ask("demo", until="Пароль верный")
    assert "новой ссылке-приглашению" in reply.text
    row = await user_row(app, 1002)
    assert row is not None and row.revoked_at is not None

    await join(app, await invite_code(admin), 1002, "Иван")
    await inspector.tap("Передача показаний по дому", until="Выберите дом")


async def test_the_admin_hands_the_role_over(app: App) -> None:
    admin = await log_in(app)
    inspector = await join(app, await invite_code(admin), 1002, "Иван")
    await admin.ask("/team", until="Команда")
    await admin.tap("Иван (@user1002)", until="Что сделать?")
    await admin.tap("Сделать администратором", until="Права администратора переданы")
    await inspector.wait_for("Вы теперь администратор", since=0)

    assert (await user_row(app, 1002)).role == Role.ADMIN  # type: ignore[union-attr]
    assert (await user_row(app, 1001)).role == Role.INSPECTOR  # type: ignore[union-attr]
    assert "team" in command_names(app, 1002)
    assert "team" not in command_names(app, 1001)
    await admin.ask("/invite", until="только администратор")
    team = await inspector.ask("/team", until="Команда")
    assert any("👑 Иван" in label for label in team.button_labels)


async def test_tapping_the_own_row_or_a_member_twice_keeps_the_team_screen(app: App) -> None:
    """Regression: these taps change nothing on screen; Telegram's "message is not
    modified" reached the user as the generic error."""
    admin = await log_in(app)
    await join(app, await invite_code(admin), 1002, "Иван")
    team = await admin.ask("/team", until="Команда")
    own = next(label for label in team.button_labels if label.startswith("👑"))
    await admin.tap(own)
    await admin.press("Иван (@user1002)", message=team)
    await admin.tap("Иван (@user1002)", message=team)  # the double tap
    await admin.wait_for("Что сделать?")
    await app.tg.wait_quiet()
    assert not any(texts.UNEXPECTED_ERROR in m.text for m in admin.bot_messages())
    assert "Что сделать?" in admin.last_bot_message().text  # type: ignore[union-attr]


async def test_an_invite_after_the_admins_logout_is_refused_until_the_admin_logs_in_again(
    app: App,
) -> None:
    """Regression: the logout of the last user erases the password; an inspector who
    joined after it got the generic error on every menu button."""
    admin = await log_in(app)
    code = await invite_code(admin)
    await admin.ask("/logout", until=texts.LOGGED_OUT)

    inspector = await join(app, code, 1002, "Иван", until=texts.INVITE_ACCOUNT_NOT_CONNECTED)
    assert (await user_row(app, 1002)) is None
    await app.tg.wait_quiet()
    assert not any(texts.UNEXPECTED_ERROR in m.text for m in inspector.bot_messages())

    await admin.send_command("/start")
    await admin.wait_for("логин")
    await admin.ask("demo", until="пароль")
    await admin.ask("demo", until="Вы вошли")
    await join(app, code, 1002, "Иван")  # the same link, kept unused
    await inspector.tap("Передача показаний по дому", until="Выберите дом")


async def test_an_inspector_of_an_account_without_its_password_is_told_to_ask_the_admin(
    app: App,
) -> None:
    """An inspector already let in while the account has no password (joined so before
    the fix above): every menu button says what to do, never the generic error."""
    admin = await log_in(app)
    inspector = await join(app, await invite_code(admin), 1002, "Иван")
    async with app.session_pool() as session:
        await session.execute(update(Account).values(password_encrypted=None))
        await session.commit()
    credentials: CredentialsProvider = app.dispatcher["credentials"]
    row = await user_row(app, 1002)
    assert row is not None and row.account_id is not None
    credentials.forget(row.account_id)

    await inspector.tap(texts.MENU_VIEW, until=texts.ACCOUNT_NOT_CONNECTED)
    await inspector.tap(texts.MENU_SEND)  # the same text again: the card stays as it is
    await app.tg.wait_quiet()
    assert [m.text for m in inspector.bot_messages()] == [texts.ACCOUNT_NOT_CONNECTED]


async def test_an_inspector_who_opens_an_invite_again_mid_building_keeps_the_walk(
    app: App,
) -> None:
    """Regression: /start <code> cleared the FSM before the invite was checked, so a
    member's tap on a link (refused: already in the team) lost the building's walk."""
    admin = await log_in(app)
    inspector = await join(app, await invite_code(admin), 1002, "Иван")
    await open_building(inspector)
    await join(app, await invite_code(admin), 1002, "Иван", until=texts.INVITE_ALREADY_MEMBER)
    value = await first_value(app, "Авиастроителей")
    await inspector.ask(value.replace(".", ","), until="Прибор 2 из")
