"""The account's team: roles, invite links, revoking an inspector, handing over admin.

The first Telegram user who links an account is its admin (services/accounts.py).
The admin invites inspectors with single-use, expiring links, so that an inspector
joins without ever knowing the portal password. An invite code is 128 random bits;
only its sha256 is stored, so a copy of the database opens no door.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.moments import as_utc
from storage.models import Account, Invite, Role, TelegramUser

log = logging.getLogger(__name__)

# Telegram allows 64 characters of [A-Za-z0-9_-] in a /start payload.
CODE_BYTES = 16
MAX_CODE_LENGTH = 64


def code_hash(code: str) -> str:
    """What is stored of an invite code."""
    return hashlib.sha256(code.strip().encode("utf-8")).hexdigest()


def invite_link(bot_username: str, code: str) -> str:
    """The deep link that opens the bot with the invite code."""
    return f"https://t.me/{bot_username}?start={code}"


def looks_like_invite(payload: str) -> bool:
    """A /start payload that may be an invite code (anything else is ignored)."""
    return 16 <= len(payload) <= MAX_CODE_LENGTH and all(
        ch.isascii() and (ch.isalnum() or ch in "-_") for ch in payload
    )


@dataclass(frozen=True, slots=True)
class NewInvite:
    code: str
    expires_at: datetime


async def create_invite(
    session: AsyncSession, *, account_id: str, created_by: int, ttl: timedelta, now: datetime
) -> NewInvite:
    """A fresh single-use invite for the account; the clear code is returned only here."""
    code = secrets.token_urlsafe(CODE_BYTES)
    now = as_utc(now)
    invite = Invite(
        account_id=account_id,
        code_hash=code_hash(code),
        created_by=created_by,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(invite)
    await session.commit()
    log.info("Invite %s created for account %s by %s", invite.id, account_id, created_by)
    return NewInvite(code=code, expires_at=invite.expires_at)


@dataclass(frozen=True, slots=True)
class Joined:
    account_name: str


@dataclass(frozen=True, slots=True)
class InviteRefused:
    """Why an invite did not let the user in."""

    reason: str  # "unknown", "used", "expired", "other_account", "member", "not_connected"


JoinResult = Joined | InviteRefused


async def accept_invite(
    session: AsyncSession,
    *,
    code: str,
    telegram_user_id: int,
    full_name: str,
    username: str | None,
    now: datetime,
) -> JoinResult:
    """Use an invite: the user becomes an inspector of its account.

    The claim is one conditional UPDATE, so a link used twice at once lets in one
    user only. An invite also lifts a revocation: it is the admin's decision. An
    account without a stored password (its last user logged out) takes nobody in.
    """
    now = as_utc(now)
    invite = await session.scalar(select(Invite).where(Invite.code_hash == code_hash(code)))
    if invite is None:
        return InviteRefused("unknown")
    if invite.used_at is not None:
        return InviteRefused("used")
    if as_utc(invite.expires_at) <= now:
        return InviteRefused("expired")
    user = await session.get(TelegramUser, telegram_user_id)
    active = user is not None and user.account_id is not None and user.revoked_at is None
    if active and user is not None and user.account_id != invite.account_id:
        return InviteRefused("other_account")
    if active:
        # Already in this team (e.g. the admin tried the link): keep the invite for
        # the person it was made for.
        return InviteRefused("member")
    account = await session.get(Account, invite.account_id)
    if account is None or not account.password_encrypted:
        # The last linked user logged out and the password was erased: an inspector let
        # in now could do nothing. The invite stays unused for after the admin's login.
        return InviteRefused("not_connected")
    claimed = await session.execute(
        update(Invite)
        .where(Invite.id == invite.id, Invite.used_at.is_(None))
        .values(used_at=now, used_by=telegram_user_id)
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        await session.rollback()
        return InviteRefused("used")
    if user is None:
        user = TelegramUser(id=telegram_user_id)
        session.add(user)
    user.role = Role.INSPECTOR
    user.full_name = full_name
    user.username = username
    user.account_id = invite.account_id
    user.linked_at = now
    user.revoked_at = None
    await session.commit()
    log.info(
        "User %s joined account %s by invite %s", telegram_user_id, invite.account_id, invite.id
    )
    return Joined(account_name=account.name)


@dataclass(frozen=True, slots=True)
class Member:
    id: int
    full_name: str
    username: str | None
    role: Role
    linked_at: datetime | None


async def team(session: AsyncSession, account_id: str) -> list[Member]:
    """Active members of the account: the admin first, then by name."""
    rows = await session.scalars(
        select(TelegramUser).where(
            TelegramUser.account_id == account_id, TelegramUser.revoked_at.is_(None)
        )
    )
    members = [
        Member(u.id, u.full_name, u.username, Role(u.role or Role.INSPECTOR), u.linked_at)
        for u in rows
    ]
    members.sort(key=lambda m: (m.role != Role.ADMIN, m.full_name.casefold(), m.id))
    return members


async def is_admin(session: AsyncSession, telegram_user_id: int) -> bool:
    user = await session.get(TelegramUser, telegram_user_id)
    return (
        user is not None
        and user.account_id is not None
        and user.revoked_at is None
        and user.role == Role.ADMIN
    )


async def _member_of(session: AsyncSession, account_id: str, member_id: int) -> TelegramUser | None:
    user = await session.get(TelegramUser, member_id)
    if user is None or user.account_id != account_id or user.revoked_at is not None:
        return None
    return user


async def revoke(
    session: AsyncSession, *, account_id: str, admin_id: int, member_id: int, now: datetime
) -> TelegramUser | None:
    """Close the account to a member; None if not a member or the admin themself.

    The user keeps the account id (so that typing the portal password does not
    bring them back: only a new invite does); the middleware refuses them from
    their next update on.
    """
    if member_id == admin_id:
        return None
    user = await _member_of(session, account_id, member_id)
    if user is None:
        return None
    user.revoked_at = as_utc(now)
    user.role = Role.INSPECTOR
    await session.commit()
    log.info("User %s revoked from account %s by %s", member_id, account_id, admin_id)
    return user


async def hand_over_admin(
    session: AsyncSession, *, account_id: str, admin_id: int, member_id: int
) -> TelegramUser | None:
    """Make another member the admin; the old admin becomes an inspector."""
    if member_id == admin_id:
        return None
    admin = await _member_of(session, account_id, admin_id)
    member = await _member_of(session, account_id, member_id)
    if admin is None or member is None or admin.role != Role.ADMIN:
        return None
    admin.role = Role.INSPECTOR
    member.role = Role.ADMIN
    await session.commit()
    log.info("Account %s: admin handed over from %s to %s", account_id, admin_id, member_id)
    return member


async def admins(session: AsyncSession) -> list[int]:
    """Every active admin (their command menus are refreshed at start)."""
    rows = await session.scalars(
        select(TelegramUser.id).where(
            TelegramUser.role == Role.ADMIN,
            TelegramUser.account_id.is_not(None),
            TelegramUser.revoked_at.is_(None),
        )
    )
    return list(rows)


async def invite_accepted_since(
    session: AsyncSession, telegram_user_id: int, moment: datetime
) -> bool:
    """Whether this user took an invite at `moment` or later.

    The update runner asks it of an invite's /start that a restart found unfinished:
    the join may have been committed before the bot died, the done mark not.
    """
    used_at = await session.scalar(
        select(func.max(Invite.used_at)).where(Invite.used_by == telegram_user_id)
    )
    return used_at is not None and as_utc(used_at) >= as_utc(moment)
