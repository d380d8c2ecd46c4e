"""Choosing and opening the billing the bot talks to, from BillingSettings."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from argon2 import PasswordHasher

from billing_client.base import Billing
from billing_client.embedded import AcceptanceWindow, EmbeddedBilling, load_demo_if_empty
from billing_client.embedded.db import database_kind
from settings import BillingSettings

# The HTTP client (with tenacity) is imported only when BILLING_URL is set.
if TYPE_CHECKING:
    from billing_client.http import HttpBilling

logger = logging.getLogger(__name__)


def http_billing(settings: BillingSettings, **options: Any) -> HttpBilling:
    """The HTTP client for BILLING_URL with the timeouts and retries from settings."""
    from billing_client.http import HttpBilling

    if not settings.BILLING_URL:
        raise ValueError("BILLING_URL is not set")
    return HttpBilling(
        settings.BILLING_URL,
        connect_timeout=settings.BILLING_CONNECT_TIMEOUT,
        total_timeout=settings.BILLING_TIMEOUT,
        retries=settings.BILLING_RETRIES,
        **options,
    )


async def open_embedded_billing(settings: BillingSettings, **options: Any) -> EmbeddedBilling:
    """The embedded billing on BILLING_DATABASE_URL, migrated, with the demo if due.

    The demo account is loaded when BILLING_DEMO is true and the database has no
    account at all. `options` go to the EmbeddedBilling constructor.
    """
    billing = await EmbeddedBilling.open(
        settings.BILLING_DATABASE_URL,
        timezone=settings.TIMEZONE,
        window=AcceptanceWindow(settings.BILLING_ACCEPT_FROM_DAY, settings.BILLING_ACCEPT_TO_DAY),
        **options,
    )
    try:
        if settings.BILLING_DEMO:
            await load_demo_if_empty(billing)
    except BaseException:
        await billing.close()
        raise
    return billing


async def open_billing(
    settings: BillingSettings, *, password_hasher: PasswordHasher | None = None
) -> Billing:
    """The billing the bot should use: HTTP when BILLING_URL is set, else embedded.

    `password_hasher`: the embedded billing's argon2 costs (tests pass cheap ones).
    Call `close()` on the result at shutdown.
    """
    if settings.BILLING_URL:
        return http_billing(settings)
    return await open_embedded_billing(settings, password_hasher=password_hasher)


def describe_billing(settings: BillingSettings) -> str:
    """One safe phrase for the start log: "embedded (sqlite)" or the URL without secrets.

    User info, query and fragment are dropped from the URL: they are where an
    operator might have put a credential.
    """
    if settings.BILLING_URL:
        parts = urlsplit(settings.BILLING_URL)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port is not None else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return f"embedded ({database_kind(settings.BILLING_DATABASE_URL)})"
