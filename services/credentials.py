"""Billing credentials of linked accounts, decrypted only when billing needs them."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing_client.base import BillingAuth
from storage.crypto import SecretKeyError, Vault
from storage.models import Account


class AccountNotLinked(Exception):
    """The account has no stored credentials (e.g. after /logout of its last user)."""


class CredentialsProvider:
    """Keeps one BillingAuth per account for the process, so its token is reused."""

    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._cache: dict[str, BillingAuth] = {}

    def encrypt(self, password: SecretStr) -> str:
        """The stored form of a password."""
        return self._vault.encrypt(password.get_secret_value())

    def remember(self, account_id: str, login: str, password: SecretStr, token: str) -> BillingAuth:
        """Cache a fresh session right after a successful login."""
        auth = BillingAuth(login=login, password=password, token=SecretStr(token))
        self._cache[account_id] = auth
        return auth

    async def auth_for(self, session: AsyncSession, account_id: str) -> BillingAuth:
        """The account's BillingAuth; raises AccountNotLinked without stored credentials."""
        cached = self._cache.get(account_id)
        if cached is not None:
            return cached
        account = await session.get(Account, account_id)
        if account is None or not account.password_encrypted:
            raise AccountNotLinked(account_id)
        password = SecretStr(self._vault.decrypt(account.password_encrypted))
        auth = BillingAuth(login=account.login, password=password)
        self._cache[account_id] = auth
        return auth

    def forget(self, account_id: str) -> None:
        """Drop the cached session (credentials changed or were removed)."""
        self._cache.pop(account_id, None)


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
            select(Account)
            .where(Account.password_encrypted.is_not(None), Account.password_encrypted != "")
            .order_by(Account.id)
            .with_for_update()
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
