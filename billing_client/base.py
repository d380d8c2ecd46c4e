"""The one interface the bot uses to reach billing, whatever sits behind it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pydantic import SecretStr

from billing_client.models import (
    BuildingList,
    BuildingMeters,
    LoginResult,
    PeriodReadings,
    ReadingIn,
    SubmitResult,
)


@dataclass
class BillingAuth:
    """An account's stored credentials plus its current session token.

    The client fills `token` on first use and replaces it transparently when
    billing answers 401 token_expired. `repr` never shows the secrets.
    `refused`: billing answered invalid_credentials to this password; it is not
    tried again (billing locks an account after a few wrong passwords).
    """

    login: str
    password: SecretStr
    token: SecretStr | None = field(default=None, repr=False)
    refused: bool = False


class Billing(Protocol):
    """Billing API v1 as the bot sees it (see shared/billing-api.md)."""

    async def login(self, login: str, password: SecretStr) -> LoginResult:
        """Check credentials; raises InvalidCredentials or TooManyAttempts."""
        ...

    async def buildings(self, auth: BillingAuth) -> BuildingList:
        """The account's buildings in billing's order."""
        ...

    async def meters(self, auth: BillingAuth, building_id: str) -> BuildingMeters:
        """Every slot of a building for the current period; raises NotFound."""
        ...

    async def submit(
        self,
        auth: BillingAuth,
        building_id: str,
        readings: list[ReadingIn],
        idempotency_key: str,
    ) -> SubmitResult:
        """Send one batch; the same key and body return the first answer again."""
        ...

    async def readings(
        self, auth: BillingAuth, building_id: str, period: str | None = None
    ) -> PeriodReadings:
        """What billing accepted for a building in a period (default: current)."""
        ...

    async def close(self) -> None:
        """Release connections and other resources."""
        ...
