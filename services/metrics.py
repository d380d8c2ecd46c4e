"""What an operator watches: Prometheus metrics and the readiness checks.

Each process (and each test) owns one `Metrics` with its own CollectorRegistry,
never prometheus_client's global one, so several dispatchers in one process do
not clash. The Telegram side feeds it from handlers/instrumentation.py; billing
calls are counted by wrapping the Billing object (`MeteredBilling`); the outbox
gauges are computed from the submissions table when /metrics is scraped.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from pydantic import SecretStr
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing_client.base import Billing, BillingAuth
from billing_client.models import (
    BuildingList,
    BuildingMeters,
    LoginResult,
    PeriodReadings,
    ReadingIn,
    SubmitResult,
)
from storage.models import Submission, SubmissionStatus

# Handlers answer in milliseconds; a billing round trip inside one takes seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
CHECK_TIMEOUT = 3.0  # seconds for each readiness check


class Metrics:
    """The process's instruments, registered in its own registry."""

    def __init__(self, *, process_metrics: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if process_metrics:
            ProcessCollector(registry=self.registry)
        self.updates = Counter(
            "bot_updates_total",
            "Telegram updates handled, by update type and outcome "
            "(handled, unhandled: no handler matched, error: the handler raised).",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.handler_seconds = Histogram(
            "bot_handler_seconds",
            "Time from an update's arrival at the dispatcher to the end of its handling.",
            ["type"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.telegram_errors = Counter(
            "bot_telegram_api_errors_total",
            "Bot API calls that failed, by method and kind (retry_after, bad_request, "
            "forbidden, not_found, conflict, unauthorized, server_error, network, other).",
            ["method", "kind"],
            registry=self.registry,
        )
        self.billing_calls = Counter(
            "bot_billing_calls_total",
            "Calls to billing, by operation.",
            ["operation"],
            registry=self.registry,
        )
        self.billing_errors = Counter(
            "bot_billing_errors_total",
            "Calls to billing that raised, by operation and error class.",
            ["operation", "error"],
            registry=self.registry,
        )
        self.billing_seconds = Histogram(
            "bot_billing_call_seconds",
            "Duration of calls to billing, retries included, by operation.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.outbox_depth = Gauge(
            "bot_outbox_pending",
            "Batches written to the outbox and not yet confirmed by billing.",
            registry=self.registry,
        )
        self.outbox_oldest_age = Gauge(
            "bot_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending batch in the outbox (0 when it is empty).",
            registry=self.registry,
        )

    def observe_update(self, update_type: str, outcome: str, seconds: float) -> None:
        self.updates.labels(update_type, outcome).inc()
        self.handler_seconds.labels(update_type).observe(seconds)

    async def refresh_outbox(self, session_pool: async_sessionmaker[AsyncSession]) -> None:
        """Set the outbox gauges from the submissions table (called at scrape time)."""
        async with session_pool() as session:
            backlog = await outbox_backlog(session, now=datetime.now(UTC))
        self.outbox_depth.set(backlog.pending)
        self.outbox_oldest_age.set(backlog.oldest_age_seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every instrument."""
        return generate_latest(self.registry)


@dataclass(frozen=True)
class OutboxBacklog:
    pending: int
    oldest_age_seconds: float


async def outbox_backlog(session: AsyncSession, *, now: datetime) -> OutboxBacklog:
    """How many batches wait for billing and how long the oldest has waited."""
    row = (
        await session.execute(
            select(func.count(), func.min(Submission.created_at)).where(
                Submission.status == SubmissionStatus.PENDING
            )
        )
    ).one()
    count, oldest = int(row[0]), row[1]
    if oldest is None:
        return OutboxBacklog(count, 0.0)
    if oldest.tzinfo is None:  # SQLite returns naive datetimes; they were written in UTC
        oldest = oldest.replace(tzinfo=UTC)
    return OutboxBacklog(count, max(0.0, (now - oldest).total_seconds()))


class MeteredBilling:
    """A Billing that counts every call, its errors and its duration, then delegates."""

    def __init__(self, inner: Billing, metrics: Metrics) -> None:
        self.inner = inner
        self._metrics = metrics

    async def _call(self, operation: str, call: Any) -> Any:
        self._metrics.billing_calls.labels(operation).inc()
        started = time.monotonic()
        try:
            return await call
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self._metrics.billing_errors.labels(operation, type(exc).__name__).inc()
            raise
        finally:
            self._metrics.billing_seconds.labels(operation).observe(time.monotonic() - started)

    async def login(self, login: str, password: SecretStr) -> LoginResult:
        result: LoginResult = await self._call("login", self.inner.login(login, password))
        return result

    async def buildings(self, auth: BillingAuth) -> BuildingList:
        result: BuildingList = await self._call("buildings", self.inner.buildings(auth))
        return result

    async def meters(self, auth: BillingAuth, building_id: str) -> BuildingMeters:
        result: BuildingMeters = await self._call("meters", self.inner.meters(auth, building_id))
        return result

    async def submit(
        self,
        auth: BillingAuth,
        building_id: str,
        readings: list[ReadingIn],
        idempotency_key: str,
    ) -> SubmitResult:
        result: SubmitResult = await self._call(
            "submit", self.inner.submit(auth, building_id, readings, idempotency_key)
        )
        return result

    async def readings(
        self, auth: BillingAuth, building_id: str, period: str | None = None
    ) -> PeriodReadings:
        result: PeriodReadings = await self._call(
            "readings", self.inner.readings(auth, building_id, period)
        )
        return result

    async def ping(self) -> None:
        """The inner billing's reachability check (see `Pingable`), counted like a call."""
        ping = getattr(self.inner, "ping", None)
        if ping is not None:
            await self._call("ping", ping())

    async def close(self) -> None:
        await self.inner.close()


class Pingable(Protocol):
    async def ping(self) -> None:
        """Raise unless billing answers; the cheapest request it has."""


@dataclass(frozen=True)
class Readiness:
    ready: bool
    checks: dict[str, str]  # name -> "ok" or the reason it failed (no secrets, no URLs)


async def check_readiness(
    session_pool: async_sessionmaker[AsyncSession],
    billing: Billing | Pingable,
    *,
    check_timeout: float = CHECK_TIMEOUT,
) -> Readiness:
    """Is the database answering SELECT 1, and billing its cheapest call, in time?"""

    async def database() -> None:
        async with session_pool() as session:
            await session.execute(text("SELECT 1"))

    async def billing_ping() -> None:
        ping = getattr(billing, "ping", None)
        if ping is not None:
            await ping()

    results = await asyncio.gather(
        _timed(database(), check_timeout), _timed(billing_ping(), check_timeout)
    )
    checks = {"database": results[0], "billing": results[1]}
    return Readiness(all(v == "ok" for v in checks.values()), checks)


async def _timed(check: Any, seconds: float) -> str:
    try:
        await asyncio.wait_for(check, seconds)
    except TimeoutError:
        return f"no answer within {seconds:g} s"
    except Exception as exc:
        # The class name only: driver messages can carry hosts, users or URLs.
        return f"unreachable ({type(exc).__name__})"
    return "ok"
