"""Keyboards of the admin's team screen and of /status in the group."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

import texts
from keyboards.callbacks import StatusPageCallback, TeamAction, TeamActionKind
from services.team import Member
from storage.models import Role


def _button(label: str, action: TeamActionKind, member_id: int = 0) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=label, callback_data=TeamAction(action=action, member_id=member_id).pack()
    )


def team_keyboard(members: Sequence[Member], admin_id: int) -> InlineKeyboardMarkup:
    """One row per member (the admin's own row does nothing), then «Invite»."""
    rows = [
        [
            _button(
                texts.member_label(m.full_name, m.username, m.role == Role.ADMIN),
                TeamActionKind.LIST if m.id == admin_id else TeamActionKind.MEMBER,
                m.id,
            )
        ]
        for m in members
    ]
    rows.append([_button(texts.BTN_INVITE, TeamActionKind.INVITE)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def member_keyboard(member_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(texts.BTN_REVOKE, TeamActionKind.REVOKE, member_id)],
            [_button(texts.BTN_HAND_OVER, TeamActionKind.HAND_OVER, member_id)],
            [_button(texts.BTN_TEAM_BACK, TeamActionKind.LIST)],
        ]
    )


def status_keyboard(page: int, pages: int) -> InlineKeyboardMarkup | None:
    if pages <= 1:
        return None
    row = []
    if page > 0:
        row.append(
            InlineKeyboardButton(
                text=texts.BTN_STATUS_PREV, callback_data=StatusPageCallback(page=page - 1).pack()
            )
        )
    if page < pages - 1:
        row.append(
            InlineKeyboardButton(
                text=texts.BTN_STATUS_NEXT, callback_data=StatusPageCallback(page=page + 1).pack()
            )
        )
    return InlineKeyboardMarkup(inline_keyboard=[row])
