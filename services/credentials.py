"""Billing credentials of linked accounts, decrypted only when billing needs them."""

from __future__ import annotations

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from billing_client.base import BillingAuth
from storage.crypto import Vault
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
