"""The HTTP client of billing API v1 (shared/billing-api.md).

One aiohttp session (one connection pool) per client object, created on first
use inside the running event loop. Every attempt has its own connect and total
timeout. Transient failures (timeouts, connection errors, 5xx, and 429 with a
short Retry-After) are retried with exponential backoff and jitter, but only for
GETs and for POSTs that carry an Idempotency-Key: repeating anything else could
do it twice. Statuses and error codes become the typed errors of
billing_client.errors. Nothing secret (password, token, request or response
body) ever reaches a log line or an exception text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
from pydantic import BaseModel, SecretStr, ValidationError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from billing_client.auth import TokenAuthBilling
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
from billing_client.models import (
    BuildingList,
    BuildingMeters,
    ErrorEnvelope,
    LoginResult,
    PeriodReadings,
    ReadingIn,
    SubmitResult,
)

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

USER_AGENT = "meter-readings-bot billing-client/1"
# A server message is shown to people and logged; cap it so a misbehaving server
# cannot flood either.
_MAX_MESSAGE = 300


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def describe_validation_error(exc: ValidationError) -> str:
    """Field paths and reasons of a pydantic error, without the offending values."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:5]:
        loc = ".".join(str(part) for part in error.get("loc", ())) or "(body)"
        parts.append(f"{loc}: {error.get('msg', 'invalid')}")
    more = exc.error_count() - len(parts)
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


class HttpBilling(TokenAuthBilling):
    """`Billing` over HTTP: the bot's side of the contract with a real billing adapter."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 5.0,
        total_timeout: float = 20.0,
        retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 10.0,
        max_retry_after: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        connection_limit: int = 20,
    ) -> None:
        """Configure the client; nothing connects until the first call.

        `retries` is how many times a retriable call is repeated after its first
        attempt. `backoff_base` doubles per attempt up to `backoff_max`, with
        jitter; a Retry-After from the server replaces the backoff. A 429 whose
        Retry-After exceeds `max_retry_after` is not waited for but raised as
        TooManyAttempts. `sleep` and `rng` exist so tests need not wait.
        """
        parts = urlsplit(base_url)
        if parts.username is not None or parts.password is not None:
            # aiohttp would turn user:password@ into an Authorization header, which
            # clashes with the contract's bearer token: drop it, and say so.
            logger.warning(
                "BILLING_URL carries user info; it is ignored (billing API v1 uses tokens)"
            )
            host = parts.hostname or ""
            host = f"[{host}]" if ":" in host else host
            netloc = f"{host}:{parts.port}" if parts.port is not None else host
            parts = parts._replace(netloc=netloc)
        self._base_url = urlunsplit(parts).rstrip("/")
        self._timeout = aiohttp.ClientTimeout(
            total=total_timeout, connect=connect_timeout, sock_connect=connect_timeout
        )
        self._total_timeout = total_timeout
        self._retries = max(0, retries)
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._max_retry_after = max_retry_after
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._connection_limit = connection_limit
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the connection pool; the client may be used again afterwards."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def ping(self) -> None:
        """Raise BillingUnavailable unless billing answers HTTP at all (readiness).

        The contract has no health endpoint; an unauthenticated GET /buildings is
        its cheapest request (401 without touching any account, unlike a login,
        which counts towards the login throttle). Any status below 500 means the
        server is there; no retries, one short timeout.
        """
        try:
            async with self._get_session().get(
                self._base_url + "/buildings",
                headers={"Accept": "application/json"},
                timeout=self._timeout,
            ) as response:
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise BillingUnavailable(f"billing is unreachable ({type(exc).__name__})") from None
        if status >= 500:
            raise BillingUnavailable(f"billing answered status {status}")

    # -- the contract -------------------------------------------------------

    async def login(self, login: str, password: SecretStr) -> LoginResult:
        """POST /auth/login (never retried: it carries no Idempotency-Key)."""
        body = {"login": login, "password": password.get_secret_value()}
        return await self._call("POST", "/auth/login", LoginResult, body=body)

    async def buildings_with_token(self, token: str) -> BuildingList:
        """GET /buildings."""
        return await self._call("GET", "/buildings", BuildingList, token=token)

    async def meters_with_token(self, token: str, building_id: str) -> BuildingMeters:
        """GET /buildings/{building_id}/meters."""
        path = f"/buildings/{_segment(building_id)}/meters"
        return await self._call("GET", path, BuildingMeters, token=token)

    async def submit_with_token(
        self,
        token: str,
        building_id: str,
        readings: Sequence[ReadingIn],
        idempotency_key: str,
    ) -> SubmitResult:
        """POST /buildings/{building_id}/readings with the Idempotency-Key header.

        An empty key sends no header at all, so billing answers 400
        idempotency_key_required and the call is not retried.
        """
        path = f"/buildings/{_segment(building_id)}/readings"
        body = {"readings": [reading.model_dump(mode="json") for reading in readings]}
        return await self._call(
            "POST",
            path,
            SubmitResult,
            token=token,
            body=body,
            idempotency_key=idempotency_key or None,
        )

    async def readings_with_token(
        self, token: str, building_id: str, period: str | None
    ) -> PeriodReadings:
        """GET /buildings/{building_id}/readings[?period=YYYY-MM]."""
        path = f"/buildings/{_segment(building_id)}/readings"
        params = {"period": period} if period is not None else None
        return await self._call("GET", path, PeriodReadings, token=token, params=params)

    # -- transport ----------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connection_limit, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": USER_AGENT}
            )
        return self._session

    async def _call(
        self,
        method: str,
        path: str,
        model: type[M],
        *,
        token: str | None = None,
        body: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> M:
        # The contract allows retries only where repeating cannot do a thing twice.
        retriable = method == "GET" or idempotency_key is not None
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retries + 1 if retriable else 1),
            retry=retry_if_exception(self._is_transient),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=lambda state: self._log_retry(method, path, state),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                data = await self._send(method, path, token, body, idempotency_key, params)
                try:
                    return model.model_validate(data)
                except ValidationError as exc:
                    raise BillingProtocolError(
                        f"billing answer to {method} {path} does not match the contract: "
                        f"{describe_validation_error(exc)}"
                    ) from None
        raise AssertionError("tenacity ended without an outcome")  # pragma: no cover

    def _is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, BillingUnavailable):
            return True
        # A short 429 (rate limiting) is worth waiting for; a long one (login
        # throttled for minutes) is the caller's business.
        return isinstance(exc, TooManyAttempts) and exc.retry_after <= self._max_retry_after

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float):
            return float(min(retry_after, self._max_retry_after))
        # "Equal jitter": half the exponential step is fixed so the waits really
        # grow, the other half random so that many clients do not retry in step.
        step = min(self._backoff_max, self._backoff_base * 2.0 ** (state.attempt_number - 1))
        return step / 2 + self._rng.uniform(0, step / 2)

    @staticmethod
    def _log_retry(method: str, path: str, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning(
            "billing %s %s failed (attempt %d: %s); retrying in %.2f s",
            method,
            path,
            state.attempt_number,
            type(exc).__name__ if exc is not None else "?",
            wait,
        )

    async def _send(
        self,
        method: str,
        path: str,
        token: str | None,
        body: Mapping[str, Any] | None,
        idempotency_key: str | None,
        params: Mapping[str, str] | None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        data: bytes | None = None
        if body is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        started = time.monotonic()
        try:
            async with self._get_session().request(
                method,
                self._base_url + path,
                data=data,
                headers=headers,
                params=params,
                timeout=self._timeout,
            ) as response:
                status = response.status
                retry_after_header = response.headers.get("Retry-After")
                content_type = response.headers.get("Content-Type", "")
                raw = await response.read()
        except TimeoutError:
            raise BillingUnavailable(
                f"billing did not answer {method} {path} within {self._total_timeout:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            # `from None` and only the error's type: aiohttp's texts may carry the URL,
            # and an operator's BILLING_URL could hold credentials.
            raise BillingUnavailable(
                f"billing is unreachable on {method} {path} ({type(exc).__name__})"
            ) from None
        logger.debug(
            "billing %s %s -> %d in %.3f s", method, path, status, time.monotonic() - started
        )
        if 200 <= status < 300:
            try:
                return json.loads(raw)
            except ValueError:
                raise BillingProtocolError(
                    f"billing answered {method} {path} with status {status} and a body that is "
                    f"not JSON ({len(raw)} bytes, Content-Type {content_type or 'none'!r})"
                ) from None
        raise _error_for(method, path, status, raw, parse_retry_after(retry_after_header))


def _segment(value: str) -> str:
    # An id is opaque: quote everything so that "a/b" cannot change the path.
    return quote(value, safe="")


def _error_for(
    method: str, path: str, status: int, raw: bytes, retry_after: float | None
) -> BillingError:
    code, message = _envelope(raw)
    where = f"billing {method} {path} -> {status}"
    text = (
        f"{message} ({where} {code})" if message else f"{where} {code or 'without an error body'}"
    )
    if status >= 500:
        return BillingUnavailable(text, retry_after=retry_after, code=code or None)
    if status == 429:
        return TooManyAttempts(
            text, retry_after=retry_after if retry_after is not None else 1.0, code=code or None
        )
    if status == 401 and code == "invalid_credentials":
        return InvalidCredentials(text)
    if status == 401 and code == "token_expired":
        return TokenExpired(text)
    if status == 404:
        return NotFound(text, code=code or None)
    if status == 409 and code == "idempotency_conflict":
        return IdempotencyConflict(text)
    return BillingRequestError(text, status=status, code=code or None)


def _envelope(raw: bytes) -> tuple[str, str]:
    """The error code and message of an error body, or empty strings if it has none."""
    try:
        envelope = ErrorEnvelope.model_validate_json(raw)
    except ValidationError:
        return "", ""
    return envelope.error.code[:_MAX_MESSAGE], envelope.error.message[:_MAX_MESSAGE]
