"""Billing credentials of linked accounts, decrypted only when billing needs them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydantic import SecretStr
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing_client.base import BillingAuth
from storage.crypto import SecretKeyError, Vault
from storage.models import Account

log = logging.getLogger(__name__)


class AccountNotLinked(Exception):
    """The account has no stored credentials (e.g. after /logout of its last user)."""


# The accounts that have a password stored (start-up check, key rotation).
_HAS_PASSWORD = (Account.password_encrypted.is_not(None), Account.password_encrypted != "")

# Read at each billing call: the stored password is the account's truth for every
# instance of the bot (a login or /logout may have happened on another one).
_STORED = select(Account.login, Account.password_encrypted).where(
    Account.id == bindparam("account_id")
)


class CredentialsProvider:
    """Keeps one BillingAuth per account for the process, so its token is reused.

    The cached BillingAuth is used while the account's stored password is the one it
    was made from; a new login (here or on another instance) or a /logout is followed
    at the next billing call.
    """

    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._cache: dict[str, tuple[str, BillingAuth]] = {}

    def encrypt(self, password: SecretStr) -> str:
        """The stored form of a password."""
        return self._vault.encrypt(password.get_secret_value())

    def remember(
        self, account_id: str, login: str, password: SecretStr, token: str, *, stored: str
    ) -> BillingAuth:
        """Cache a fresh session right after a successful login; `stored`: the password's
        stored form."""
        auth = BillingAuth(login=login, password=password, token=SecretStr(token))
        self._cache[account_id] = (stored, auth)
        return auth

    async def auth_for(self, session: AsyncSession, account_id: str) -> BillingAuth:
        """The account's BillingAuth; raises AccountNotLinked without usable stored
        credentials (none stored, stored with a key SECRET_KEY no longer has, or
        refused by billing since the process read them)."""
        row = (await session.execute(_STORED, {"account_id": account_id})).first()
        stored: str | None = row.password_encrypted if row is not None else None
        if row is None or not stored:
            self.forget(account_id)
            raise AccountNotLinked(account_id)
        cached = self._cache.get(account_id)
        if cached is not None and cached[0] == stored:
            if cached[1].refused:
                # Billing refused this password: only a new login helps.
                raise AccountNotLinked(account_id)
            return cached[1]
        try:
            password = SecretStr(self._vault.decrypt(stored))
        except SecretKeyError:
            self.forget(account_id)
            log.error(
                "Account %s: its stored password matches no key of SECRET_KEY; "
                "a user of the account must log in again",
                account_id,
            )
            raise AccountNotLinked(account_id) from None
        auth = BillingAuth(login=row.login, password=password)
        self._cache[account_id] = (stored, auth)
        return auth

    async def usable(self, session: AsyncSession, account_id: str) -> bool:
        """Whether the account has a stored password this process can use."""
        try:
            await self.auth_for(session, account_id)
        except AccountNotLinked:
            return False
        return True

    def forget(self, account_id: str) -> None:
        """Drop the cached session (credentials changed or were removed)."""
        self._cache.pop(account_id, None)


async def unreadable_passwords(
    session_pool: async_sessionmaker[AsyncSession], vault: Vault
) -> tuple[int, list[str]]:
    """How many account passwords are stored, and the accounts whose password no key of
    the vault decrypts (checked at start: a wrong SECRET_KEY shows in the log at once)."""
    async with session_pool() as session:
        rows = (
            await session.execute(
                select(Account.id, Account.password_encrypted)
                .where(*_HAS_PASSWORD)
                .order_by(Account.id)
            )
        ).all()
    unreadable = []
    for account_id, stored in rows:
        try:
            vault.decrypt(stored or "")
        except SecretKeyError:
            unreadable.append(account_id)
    return len(rows), unreadable


@dataclass(frozen=True)
class Rotation:
    """What a key rotation did: passwords re-encrypted, and the accounts whose stored
    password no key decrypts (left as they were)."""

    rotated: int
    unreadable: list[str]


async def rotate_stored_passwords(
    session_pool: async_sessionmaker[AsyncSession], vault: Vault
) -> Rotation:
    """Re-encrypt every stored account password with the vault's first key, in one
    transaction. A password no key decrypts is kept as it is, never overwritten.
    """
    rotated = 0
    unreadable: list[str] = []
    async with session_pool() as session:
        # Locked (PostgreSQL): a login meanwhile waits, rather than being overwritten.
        accounts = await session.scalars(
            select(Account).where(*_HAS_PASSWORD).order_by(Account.id).with_for_update()
        )
        for account in accounts:
            assert account.password_encrypted is not None
            try:
                account.password_encrypted = vault.rotate(account.password_encrypted)
            except SecretKeyError:
                unreadable.append(account.id)
                continue
            rotated += 1
        await session.commit()
    return Rotation(rotated, unreadable)
