"""Typed errors of the billing contract.

Texts never contain a password, a token or a request body: they are safe to log.
"""

from __future__ import annotations


class BillingError(Exception):
    """Base of every billing failure the bot can see."""

    code: str = "billing_error"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or self.__class__.__name__)
        if code is not None:
            self.code = code


class InvalidCredentials(BillingError):
    """401 invalid_credentials: wrong login or password."""

    code = "invalid_credentials"


class TooManyAttempts(BillingError):
    """429 too_many_attempts (or any 429): wait `retry_after` seconds."""

    code = "too_many_attempts"

    def __init__(self, message: str = "", *, retry_after: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class TokenExpired(BillingError):
    """401 token_expired: the client logs in again and repeats the call once."""

    code = "token_expired"


class NotFound(BillingError):
    """404 not_found: e.g. a building the account does not serve."""

    code = "not_found"


class IdempotencyConflict(BillingError):
    """409 idempotency_conflict: the same key was used with a different body."""

    code = "idempotency_conflict"


class BillingRequestError(BillingError):
    """Any other final 4xx (e.g. 400 idempotency_key_required)."""

    def __init__(self, message: str = "", *, status: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.status = status


class BillingUnavailable(BillingError):
    """Transient: timeout, connection error or 5xx. The outcome of a POST may be unknown.

    `retry_after` is the server's Retry-After (seconds) when a 503 carried one.
    """

    code = "unavailable"

    def __init__(
        self, message: str = "", *, retry_after: float | None = None, code: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class BillingProtocolError(BillingError):
    """The answer does not follow the contract (bad JSON, wrong shape)."""

    code = "protocol_error"
