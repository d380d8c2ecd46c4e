"""Linking a Telegram user to the company's billing account, and unlinking it.

The login throttle lives here too: every login tried through the bot is a row in
`login_attempts`, and failures inside a sliding window are counted per Telegram
user (someone guessing) and per target login (the company's real account, which
billing locks after a few failures: the bot must never be the one that locks it).

No aiogram here: results come back as small typed values and the handler turns
them into words from the text catalogue.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pydantic import SecretStr
from sqlalchemy import ColumnElement, Table, bindparam, delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from billing_client.errors import BillingError, InvalidCredentials, TooManyAttempts
from billing_client.models import LoginResult
from services.credentials import CredentialsProvider
from storage.engine import upsert_insert
from storage.models import Account, LoginAttempt, Role, TelegramUser

__all__ = [
    "MAX_FAILURES_PER_LOGIN",
    "MAX_FAILURES_PER_USER",
    "MAX_INPUT_LENGTH",
    "THROTTLE_WINDOW",
    "BillingDown",
    "LinkResult",
    "Linked",
    "LogsIn",
    "RevokedByAdmin",
    "Throttled",
    "WrongCredentials",
    "company_name",
    "link_account",
    "login_key",
    "logout",
    "minutes_until_login_allowed",
]

log = logging.getLogger(__name__)

THROTTLE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USER = 5
# Lower than any lockout a retailer's portal is likely to use (5 and more), so
# that guesses through the bot alone can never lock the company out.
MAX_FAILURES_PER_LOGIN = 3
# Logins and passwords are short; a pasted paragraph is refused before billing.
MAX_INPUT_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Linked:
    """The user is linked; `role` is ADMIN for the account's first user."""

    account_id: str
    account_name: str
    role: Role


@dataclass(frozen=True, slots=True)
class WrongCredentials:
    """Billing refused the login or password.

    `attempts_left` is what remains before the throttle; at 0, `retry_in_minutes`
    says when the next try is allowed.
    """

    attempts_left: int
    retry_in_minutes: int | None = None


@dataclass(frozen=True, slots=True)
class Throttled:
    """Too many failures (ours or billing's): try again in `minutes`."""

    minutes: int


@dataclass(frozen=True, slots=True)
class BillingDown:
    """Billing did not answer: nothing was decided, the user may try again later."""


@dataclass(frozen=True, slots=True)
class RevokedByAdmin:
    """The account's admin closed it to this user: only a new invite lets them back."""


LinkResult = Linked | WrongCredentials | Throttled | BillingDown | RevokedByAdmin


class LogsIn(Protocol):
    """The one part of `Billing` that linking needs."""

    async def login(self, login: str, password: SecretStr) -> LoginResult:
        """Check credentials; raises InvalidCredentials, TooManyAttempts or BillingError."""
        ...


def login_key(login: str) -> str:
    """The throttle's key of a login: equality without storing the login itself.

    Case-folded like billing compares logins, so "Demo " and "demo" share one count.
    """
    return hashlib.sha256(login.strip().casefold().encode("utf-8")).hexdigest()


def _utc(moment: datetime) -> datetime:
    # SQLite hands timestamps back without an offset; every one we write is UTC.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _minutes_until(moment: datetime, now: datetime) -> int:
    """Whole minutes from now until moment, rounded up, at least 1."""
    return max(1, math.ceil((moment - now).total_seconds() / 60))


async def _wait_for_limit(
    session: AsyncSession, condition: ColumnElement[bool], limit: int, now: datetime
) -> datetime | None:
    """When failures matching condition drop below limit, or None if they already are."""
    rows = await session.scalars(
        select(LoginAttempt.attempted_at)
        .where(
            condition,
            LoginAttempt.succeeded.is_(False),
            LoginAttempt.attempted_at > now - THROTTLE_WINDOW,
        )
        .order_by(LoginAttempt.attempted_at)
    )
    failures = [_utc(at) for at in rows]
    if len(failures) < limit:
        return None
    # The failure whose leaving brings the count under the limit; usually the
    # oldest, later ones only when parallel tries pushed the count past the limit.
    return failures[len(failures) - limit] + THROTTLE_WINDOW


async def _failures(session: AsyncSession, condition: ColumnElement[bool], now: datetime) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(LoginAttempt)
        .where(
            condition,
            LoginAttempt.succeeded.is_(False),
            LoginAttempt.attempted_at > now - THROTTLE_WINDOW,
        )
    )
    return count or 0


async def minutes_until_login_allowed(
    session: AsyncSession, *, telegram_user_id: int, login: str, now: datetime
) -> int | None:
    """Minutes until this user may try this login again, or None if allowed now.

    Both limits apply: MAX_FAILURES_PER_USER failures of the user (any login) and
    MAX_FAILURES_PER_LOGIN failures on the login (any user) within THROTTLE_WINDOW.
    """
    now = _utc(now)
    waits = [
        await _wait_for_limit(
            session, LoginAttempt.telegram_user_id == telegram_user_id, MAX_FAILURES_PER_USER, now
        ),
        await _wait_for_limit(
            session, LoginAttempt.login_key == login_key(login), MAX_FAILURES_PER_LOGIN, now
        ),
    ]
    latest = max((w for w in waits if w is not None), default=None)
    return None if latest is None else _minutes_until(latest, now)


async def _attempts_left(
    session: AsyncSession, *, telegram_user_id: int, login: str, now: datetime
) -> int:
    """Tries left before the throttle; negative when parallel tries went past a limit."""
    by_user = await _failures(session, LoginAttempt.telegram_user_id == telegram_user_id, now)
    by_login = await _failures(session, LoginAttempt.login_key == login_key(login), now)
    return min(MAX_FAILURES_PER_USER - by_user, MAX_FAILURES_PER_LOGIN - by_login)


async def _record_attempt(
    session: AsyncSession, *, telegram_user_id: int, login: str, now: datetime
) -> LoginAttempt:
    """Write the try as a failure and commit before billing sees it.

    If the bot dies while billing checks the password, billing may have counted
    the try: counting it too keeps the per-login limit below billing's lockout.
    """
    attempt = LoginAttempt(
        telegram_user_id=telegram_user_id,
        login_key=login_key(login),
        succeeded=False,
        attempted_at=now,
    )
    session.add(attempt)
    await session.commit()
    return attempt


async def _forget_attempt(session: AsyncSession, attempt: LoginAttempt) -> None:
    """Remove a try that billing never judged, committed."""
    await session.execute(delete(LoginAttempt).where(LoginAttempt.id == attempt.id))
    await session.commit()


async def _choose_role(session: AsyncSession, account_id: str, telegram_user_id: int) -> Role:
    """ADMIN for the first user of the account (or the admin linking again)."""
    other_admin = await session.scalar(
        select(
            exists().where(
                TelegramUser.account_id == account_id,
                TelegramUser.role == Role.ADMIN,
                TelegramUser.revoked_at.is_(None),
                TelegramUser.id != telegram_user_id,
            )
        )
    )
    return Role.INSPECTOR if other_admin else Role.ADMIN


async def _has_linked_users(session: AsyncSession, account_id: str) -> bool:
    linked = await session.scalar(
        select(
            exists().where(
                TelegramUser.account_id == account_id,
                TelegramUser.revoked_at.is_(None),
            )
        )
    )
    return bool(linked)


async def _forget_if_orphaned(
    session: AsyncSession, credentials: CredentialsProvider, account_id: str
) -> bool:
    """Erase the stored password when no linked user of the account remains.

    The password is kept only to renew billing sessions for linked users; with
    none left, keeping it would be a secret stored for no one. Flushes, never commits.
    """
    await session.flush()
    if await _has_linked_users(session, account_id):
        return False
    account = await session.get(Account, account_id)
    if account is not None:
        account.password_encrypted = None
    credentials.forget(account_id)
    return True


async def _save_account(
    session: AsyncSession,
    credentials: CredentialsProvider,
    result: LoginResult,
    login: str,
    password: SecretStr,
) -> Account:
    """Create the account's row or bring it up to date, in one statement: two first
    logins of one company at once would otherwise both insert it, and one would fail."""
    values = {
        "name": result.account.name,
        "inn": result.account.inn,
        "login": login,
        "password_encrypted": credentials.encrypt(password),
    }
    insert = upsert_insert(session.get_bind().dialect.name)(Account)
    await session.execute(
        insert.values(id=result.account.id, **values).on_conflict_do_update(
            index_elements=[Account.id], set_=values
        )
    )
    account = await session.get(Account, result.account.id, populate_existing=True)
    assert account is not None
    return account


async def _link_user(
    session: AsyncSession,
    *,
    telegram_user_id: int,
    full_name: str,
    username: str | None,
    account_id: str,
    now: datetime,
) -> tuple[TelegramUser, str | None]:
    """Create or update the user, linked to the account; also the account it left."""
    user = await session.get(TelegramUser, telegram_user_id)
    if user is None:
        user = TelegramUser(id=telegram_user_id)
        session.add(user)
    previous_account = user.account_id
    user.full_name = full_name
    user.username = username
    user.role = await _choose_role(session, account_id, telegram_user_id)
    user.account_id = account_id
    user.linked_at = now
    user.revoked_at = None
    left = previous_account if previous_account not in (None, account_id) else None
    return user, left


async def _revoked_from(session: AsyncSession, telegram_user_id: int, account_id: str) -> bool:
    user = await session.get(TelegramUser, telegram_user_id)
    return user is not None and user.revoked_at is not None and user.account_id == account_id


async def link_account(
    session: AsyncSession,
    billing: LogsIn,
    credentials: CredentialsProvider,
    *,
    telegram_user_id: int,
    full_name: str,
    username: str | None,
    login: str,
    password: SecretStr,
    now: datetime,
) -> LinkResult:
    """Check the login and password with billing and link the Telegram user.

    Order: throttle check, the attempt recorded (committed), the throttle checked
    again with it counted (tries racing on one login), billing.login, then
    in one transaction the account (password encrypted), the user (ADMIN if the
    account has no admin yet, else INSPECTOR; revocation cleared) and the attempt
    marked successful. The password is never stored or logged in clear.
    """
    now = _utc(now)
    login = login.strip()
    wait = await minutes_until_login_allowed(
        session, telegram_user_id=telegram_user_id, login=login, now=now
    )
    if wait is not None:
        return Throttled(minutes=wait)

    attempt = await _record_attempt(
        session, telegram_user_id=telegram_user_id, login=login, now=now
    )
    # Tries of other users may have passed the check above at the same moment. Each
    # try is counted before it looks again, so at most the limit of them go on.
    if await _attempts_left(session, telegram_user_id=telegram_user_id, login=login, now=now) < 0:
        await _forget_attempt(session, attempt)
        wait = await minutes_until_login_allowed(
            session, telegram_user_id=telegram_user_id, login=login, now=now
        )
        return Throttled(minutes=wait or 1)
    try:
        result = await billing.login(login, password)
    except InvalidCredentials:
        left = max(
            0,
            await _attempts_left(session, telegram_user_id=telegram_user_id, login=login, now=now),
        )
        log.info("Login refused by billing for user %s (%s attempts left)", telegram_user_id, left)
        retry = None
        if left == 0:
            retry = await minutes_until_login_allowed(
                session, telegram_user_id=telegram_user_id, login=login, now=now
            )
        return WrongCredentials(attempts_left=left, retry_in_minutes=retry)
    except TooManyAttempts as exc:
        # Billing's own lockout: its wait is the truth; the attempt stays counted.
        log.warning("Billing throttles logins (retry after %ss)", exc.retry_after)
        return Throttled(minutes=max(1, math.ceil(exc.retry_after / 60)))
    except BillingError as exc:
        # Credentials were not judged: the try must not count against the user.
        await _forget_attempt(session, attempt)
        log.warning("Billing unavailable during login: %s (%s)", type(exc).__name__, exc.code)
        return BillingDown()

    if await _revoked_from(session, telegram_user_id, result.account.id):
        # The password is right, but the admin's revocation outranks it.
        attempt.succeeded = True
        await session.commit()
        log.info(
            "Revoked user %s tried to link account %s again", telegram_user_id, result.account.id
        )
        return RevokedByAdmin()
    account = await _save_account(session, credentials, result, login, password)
    user, left_account = await _link_user(
        session,
        telegram_user_id=telegram_user_id,
        full_name=full_name,
        username=username,
        account_id=account.id,
        now=now,
    )
    attempt.succeeded = True
    if left_account is not None:
        await _forget_if_orphaned(session, credentials, left_account)
    await session.commit()
    # Cached only after the commit, so the process never holds a session the
    # database does not know about.
    assert account.password_encrypted is not None
    credentials.remember(
        account.id, login, password, result.token, stored=account.password_encrypted
    )
    role = user.role or Role.INSPECTOR
    log.info("User %s linked to account %s as %s", telegram_user_id, account.id, role.value)
    return Linked(account_id=account.id, account_name=account.name, role=role)


async def logout(
    session: AsyncSession, credentials: CredentialsProvider, telegram_user_id: int
) -> bool:
    """Unlink the user; False if it was not linked.

    When it was the account's last linked user, the stored password is erased
    and the cached billing session dropped: /logout of everyone leaves no secret.
    """
    user = await session.get(TelegramUser, telegram_user_id)
    if user is None or user.account_id is None:
        return False
    account_id = user.account_id
    user.account_id = None
    user.role = None
    user.linked_at = None
    erased = await _forget_if_orphaned(session, credentials, account_id)
    await session.commit()
    log.info(
        "User %s unlinked from account %s%s",
        telegram_user_id,
        account_id,
        " (credentials erased)" if erased else "",
    )
    return True


async def company_name(session: AsyncSession, account_id: str) -> str | None:
    """The name of a linked account (the company), as billing gave it."""
    account = await session.get(Account, account_id)
    return None if account is None else account.name


# Asked for every batch of updates (updates.py): built once, on the table (plain rows).
_USERS: Table = TelegramUser.__table__  # type: ignore[assignment]
_LINKED_AMONG = select(_USERS.c.id).where(
    _USERS.c.id.in_(bindparam("ids", expanding=True)),
    _USERS.c.account_id.is_not(None),
    _USERS.c.revoked_at.is_(None),
)


async def linked_among(connection: AsyncConnection, telegram_user_ids: Collection[int]) -> set[int]:
    """Which of these Telegram users are linked to an account and not revoked."""
    if not telegram_user_ids:
        return set()
    rows = await connection.scalars(_LINKED_AMONG, {"ids": list(telegram_user_ids)})
    return set(rows)
