"""Everything behind the billing contract (shared/billing-api.md).

The bot calls `open_billing(settings)` once, uses the returned `Billing` with a
`BillingAuth` per account, and closes it at shutdown.

The names below are imported on first use: `import billing_client.models` (or
the CLI) should not pay for aiohttp, SQLAlchemy, Alembic and openpyxl at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from billing_client.base import Billing, BillingAuth
    from billing_client.embedded import EmbeddedBilling
    from billing_client.errors import (
        BillingError,
        BillingProtocolError,
        BillingRequestError,
        BillingUnavailable,
        IdempotencyConflict,
        InvalidCredentials,
        NotFound,
        TokenExpired,
        TooManyAttempts,
    )
    from billing_client.factory import describe_billing, open_billing, open_embedded_billing
    from billing_client.http import HttpBilling
    from billing_client.template import (
        TemplateError,
        TemplateProblem,
        TemplateRow,
        read_template,
        submission_template,
        write_template,
    )

_WHERE = {
    "Billing": "billing_client.base",
    "BillingAuth": "billing_client.base",
    "EmbeddedBilling": "billing_client.embedded",
    "BillingError": "billing_client.errors",
    "BillingProtocolError": "billing_client.errors",
    "BillingRequestError": "billing_client.errors",
    "BillingUnavailable": "billing_client.errors",
    "IdempotencyConflict": "billing_client.errors",
    "InvalidCredentials": "billing_client.errors",
    "NotFound": "billing_client.errors",
    "TokenExpired": "billing_client.errors",
    "TooManyAttempts": "billing_client.errors",
    "describe_billing": "billing_client.factory",
    "open_billing": "billing_client.factory",
    "open_embedded_billing": "billing_client.factory",
    "HttpBilling": "billing_client.http",
    "TemplateError": "billing_client.template",
    "TemplateProblem": "billing_client.template",
    "TemplateRow": "billing_client.template",
    "read_template": "billing_client.template",
    "submission_template": "billing_client.template",
    "write_template": "billing_client.template",
}

__all__ = [
    "Billing",
    "BillingAuth",
    "BillingError",
    "BillingProtocolError",
    "BillingRequestError",
    "BillingUnavailable",
    "EmbeddedBilling",
    "HttpBilling",
    "IdempotencyConflict",
    "InvalidCredentials",
    "NotFound",
    "TemplateError",
    "TemplateProblem",
    "TemplateRow",
    "TokenExpired",
    "TooManyAttempts",
    "describe_billing",
    "open_billing",
    "open_embedded_billing",
    "read_template",
    "submission_template",
    "write_template",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'billing_client' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
