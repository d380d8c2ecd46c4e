"""The token handling both billing implementations share.

The contract says a token may expire at any time and the client then logs in
again with the account's stored credentials and repeats the call once. That rule
lives here, once: `HttpBilling` and `EmbeddedBilling` only implement the
token-level calls, and this base class turns them into the `Billing` protocol.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from pydantic import SecretStr

from billing_client.base import BillingAuth
from billing_client.errors import InvalidCredentials, TokenExpired
from billing_client.models import (
    BuildingList,
    BuildingMeters,
    LoginResult,
    PeriodReadings,
    ReadingIn,
    SubmitResult,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


class TokenAuthBilling(ABC):
    """A `Billing` built from token-level calls plus the shared re-login rule."""

    @abstractmethod
    async def login(self, login: str, password: SecretStr) -> LoginResult:
        """Check credentials and issue a token; raises InvalidCredentials or TooManyAttempts."""

    @abstractmethod
    async def buildings_with_token(self, token: str) -> BuildingList:
        """GET /buildings with a bare token; raises TokenExpired when it is no longer valid."""

    @abstractmethod
    async def meters_with_token(self, token: str, building_id: str) -> BuildingMeters:
        """GET /buildings/{id}/meters with a bare token."""

    @abstractmethod
    async def submit_with_token(
        self,
        token: str,
        building_id: str,
        readings: Sequence[ReadingIn],
        idempotency_key: str,
    ) -> SubmitResult:
        """POST /buildings/{id}/readings with a bare token."""

    @abstractmethod
    async def readings_with_token(
        self, token: str, building_id: str, period: str | None
    ) -> PeriodReadings:
        """GET /buildings/{id}/readings with a bare token."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections and other resources."""

    async def buildings(self, auth: BillingAuth) -> BuildingList:
        """The account's buildings in billing's order."""
        return await self._with_token(auth, self.buildings_with_token)

    async def meters(self, auth: BillingAuth, building_id: str) -> BuildingMeters:
        """Every slot of a building for the current period; raises NotFound."""
        return await self._with_token(
            auth, lambda token: self.meters_with_token(token, building_id)
        )

    async def submit(
        self,
        auth: BillingAuth,
        building_id: str,
        readings: list[ReadingIn],
        idempotency_key: str,
    ) -> SubmitResult:
        """Send one batch; the same key and body return the first answer again."""
        return await self._with_token(
            auth,
            lambda token: self.submit_with_token(token, building_id, readings, idempotency_key),
        )

    async def readings(
        self, auth: BillingAuth, building_id: str, period: str | None = None
    ) -> PeriodReadings:
        """What billing accepted for a building in a period (default: current)."""
        return await self._with_token(
            auth, lambda token: self.readings_with_token(token, building_id, period)
        )

    async def _refresh(self, auth: BillingAuth) -> SecretStr:
        if auth.refused:
            raise InvalidCredentials("the stored password was refused before")
        try:
            result = await self.login(auth.login, auth.password)
        except InvalidCredentials:
            auth.refused = True
            raise
        auth.token = SecretStr(result.token)
        return auth.token

    async def _with_token(self, auth: BillingAuth, call: Callable[[str], Awaitable[T]]) -> T:
        token = auth.token if auth.token is not None else await self._refresh(auth)
        try:
            return await call(token.get_secret_value())
        except TokenExpired:
            if auth.token is not None and auth.token != token:
                # Another call on the same auth has already logged in again while this
                # one was in flight: use its token rather than logging in a second time.
                fresh = auth.token
            else:
                logger.info("billing session token expired; logging in again")
                fresh = await self._refresh(auth)
        # Repeat once only: a second token_expired right after a fresh login is
        # billing's problem, and looping would hammer its login endpoint.
        return await call(fresh.get_secret_value())
