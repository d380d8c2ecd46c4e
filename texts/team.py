"""Texts of the team: invites, the team list, revoking, handing over admin."""

from __future__ import annotations

from datetime import datetime

from texts.common import esc

__all__ = [
    "ACCESS_REVOKED",
    "ADMIN_COMMANDS",
    "ADMIN_ONLY",
    "BTN_HAND_OVER",
    "BTN_INVITE",
    "BTN_REVOKE",
    "BTN_TEAM_BACK",
    "INVITE_ACCOUNT_NOT_CONNECTED",
    "INVITE_ALREADY_MEMBER",
    "INVITE_ALREADY_MEMBER_ELSEWHERE",
    "INVITE_EXPIRED",
    "INVITE_UNKNOWN",
    "INVITE_USED",
    "MEMBER_GONE",
    "RELINK_REVOKED",
    "TEAM_TITLE",
    "admin_handed_over",
    "became_admin",
    "invite_created",
    "joined",
    "member_actions",
    "member_label",
    "revoked",
]

ADMIN_COMMANDS = {
    "team": "Команда: сотрудники, приглашения",
    "invite": "Пригласить сотрудника (ссылка)",
}

ADMIN_ONLY = "Это может только администратор учётной записи."
TEAM_TITLE = (
    "<b>Команда</b>\n"
    "Нажмите на сотрудника, чтобы закрыть ему доступ или передать права администратора."
)
BTN_INVITE = "➕ Пригласить сотрудника"
BTN_REVOKE = "Закрыть доступ"
BTN_HAND_OVER = "Сделать администратором"
BTN_TEAM_BACK = "‹ К списку"
MEMBER_GONE = "Этого сотрудника уже нет в команде."

INVITE_UNKNOWN = (
    "Эта ссылка-приглашение не найдена. Попросите администратора прислать новую "
    "или войдите по логину и паролю: /start"
)
INVITE_USED = "Эта ссылка-приглашение уже использована. Попросите администратора прислать новую."
INVITE_EXPIRED = "Срок действия ссылки-приглашения истёк. Попросите администратора прислать новую."
INVITE_ALREADY_MEMBER_ELSEWHERE = (
    "Вы уже вошли в другую учётную запись. Сначала выйдите (/logout), "
    "затем откройте ссылку-приглашение ещё раз."
)
INVITE_ALREADY_MEMBER = (
    "Вы уже в этой команде. Ссылка осталась неиспользованной — перешлите её сотруднику."
)
INVITE_ACCOUNT_NOT_CONNECTED = (
    "Учётная запись компании сейчас не подключена к боту: администратор вышел из неё. "
    "Попросите администратора войти заново (/start), затем откройте эту ссылку ещё раз."
)
ACCESS_REVOKED = (
    "Администратор закрыл вам доступ к учётной записи. Вернуться можно только "
    "по новой ссылке-приглашению от администратора."
)
RELINK_REVOKED = (
    "Пароль верный, но администратор закрыл вам доступ к этой учётной записи. "
    "Вернуться можно только по новой ссылке-приглашению от администратора."
)


def joined(company: str) -> str:
    return (
        f"Добро пожаловать! Вы в команде <b>{esc(company)}</b> как контролёр.\n\n"
        "Главное меню. Что делаем?"
    )


def invite_created(link: str, expires_at: datetime) -> str:
    return (
        "Ссылка-приглашение для сотрудника (одноразовая, действует до "
        f"{expires_at:%d.%m.%Y %H:%M}):\n\n{esc(link)}\n\n"
        "Перешлите её сотруднику: по ней он войдёт без пароля от личного кабинета."
    )


def member_label(full_name: str, username: str | None, is_admin: bool) -> str:
    name = full_name or "без имени"
    who = f"{name} (@{username})" if username else name
    return f"👑 {who}" if is_admin else who


def member_actions(full_name: str, username: str | None) -> str:
    who = f"{esc(full_name)} (@{esc(username)})" if username else esc(full_name)
    return f"Сотрудник: <b>{who}</b>. Что сделать?"


def revoked(full_name: str) -> str:
    return f"Доступ закрыт: {esc(full_name)} больше не может работать с учётной записью."


def admin_handed_over(full_name: str) -> str:
    return f"Права администратора переданы: {esc(full_name)}. Теперь вы — контролёр."


def became_admin(company: str) -> str:
    return (
        f"Вы теперь администратор учётной записи <b>{esc(company)}</b>: "
        "/team — команда, /invite — пригласить сотрудника."
    )
