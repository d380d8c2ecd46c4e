"""The embedded billing backend: billing API v1's semantics on a local database."""

from billing_client.embedded.backend import (
    AccountSummary,
    AdminError,
    EmbeddedBilling,
    normalize_login,
)
from billing_client.embedded.catalog import ImportReport
from billing_client.embedded.db import (
    create_billing_engine,
    downgrade_billing_database,
    upgrade_billing_database,
)
from billing_client.embedded.demo import DEMO_LOGIN, DEMO_PASSWORD, load_demo_if_empty
from billing_client.embedded.rules import AcceptanceWindow

__all__ = [
    "DEMO_LOGIN",
    "DEMO_PASSWORD",
    "AcceptanceWindow",
    "AccountSummary",
    "AdminError",
    "EmbeddedBilling",
    "ImportReport",
    "create_billing_engine",
    "downgrade_billing_database",
    "load_demo_if_empty",
    "normalize_login",
    "upgrade_billing_database",
]
