"""The outbox: leases, retries with the same key, Retry-After, crash repair; the breaker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing_client.base import BillingAuth
from billing_client.errors import BillingUnavailable, TooManyAttempts
from billing_client.models import ReadingIn, SubmitResult
from services import submission
from services.breaker import BreakerState, CircuitBreaker
from services.credentials import CredentialsProvider
from services.outbox import Outbox, OutboxPolicy
from services.submission import BatchResult, RetryPolicy
from storage.crypto import Vault
from storage.engine import create_engine, create_session_pool
from storage.migrate import upgrade_database
from storage.models import Account, Draft, DraftSlot, SlotStatus, Submission, SubmissionStatus

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
VAULT = Vault.from_setting("test-secret-key-test-secret-key")
LEASE = timedelta(seconds=60)


class ScriptedBilling:
    """Billing whose submit answers from a script: an exception, or success."""

    def __init__(self, *script: BaseException | None) -> None:
        self.script = list(script)
        self.keys: list[str] = []

    async def submit(
        self, auth: BillingAuth, building_id: str, readings: list[ReadingIn], key: str
    ) -> SubmitResult:
        self.keys.append(key)
        step = self.script.pop(0) if self.script else None
        if step is not None:
            raise step
        return SubmitResult(
            submission_id=f"s-{len(self.keys)}",
            accepted=[reading.meter_id for reading in readings],
            rejected=[],
        )


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await upgrade_database(engine)
    yield create_session_pool(engine)
    await engine.dispose()


async def write_batches(pool: async_sessionmaker[AsyncSession], count: int) -> list[int]:
    """`count` batches of one reading each, in one draft of a linked account."""
    async with pool() as session:
        session.add(
            Account(
                id="acc-1",
                name="УК",
                login="demo",
                password_encrypted=VAULT.encrypt("demo"),
            )
        )
        draft = Draft(
            account_id="acc-1",
            building_id="b-1",
            period="2026-11",
            address="Ленина, 1",
            refreshed_at=T0,
        )
        session.add(draft)
        await session.flush()
        draft_id = draft.id
        await session.commit()
    batches = []
    for position in range(count):
        async with pool() as session:
            session.add(
                DraftSlot(
                    draft_id=draft_id,
                    position=position,
                    meter_id=f"m-{position}",
                    apartment=str(position + 1),
                    serial_number=f"SN{position}",
                    digits=6,
                    status=SlotStatus.FILLED,
                    value="123",
                    entered_at=T0,
                )
            )
            await session.commit()
            batch = await submission.create_batch(
                session, draft_id=draft_id, user_id=7, chat_id=7, now=T0
            )
        assert batch is not None
        batches.append(batch)
    return batches


def outbox_for(
    pool: async_sessionmaker[AsyncSession], billing: ScriptedBilling, **policy: object
) -> Outbox:
    return Outbox(
        pool,
        billing,  # type: ignore[arg-type]
        CredentialsProvider(VAULT),
        policy=OutboxPolicy(retry=RetryPolicy(base=0.01, ceiling=0.05), **policy),  # type: ignore[arg-type]
        breaker=CircuitBreaker(threshold=100),
    )


async def test_two_workers_never_lease_the_same_batch(
    pool: async_sessionmaker[AsyncSession],
) -> None:
    batches = await write_batches(pool, 20)
    now = T0 + timedelta(seconds=1)

    async def claim(worker: str) -> list[int]:
        return await submission.claim_due(pool, worker, now=now, lease=LEASE, limit=7, pending=True)

    got: dict[str, list[int]] = {"a": [], "b": []}
    while True:
        first, second = await asyncio.gather(claim("a"), claim("b"))
        if not first and not second:
            break
        got["a"] += first
        got["b"] += second
    assert not set(got["a"]) & set(got["b"])
    assert sorted(got["a"] + got["b"]) == batches


async def test_a_lease_left_by_a_crash_runs_out_and_the_batch_is_taken_up(
    pool: async_sessionmaker[AsyncSession],
) -> None:
    [batch] = await write_batches(pool, 1)
    crashed = await submission.claim_due(
        pool, "crashed", now=T0, lease=LEASE, limit=5, pending=True
    )
    assert crashed == [batch]
    during = await submission.claim_due(
        pool, "next", now=T0 + LEASE / 2, lease=LEASE, limit=5, pending=True
    )
    after = await submission.claim_due(
        pool, "next", now=T0 + LEASE * 2, lease=LEASE, limit=5, pending=True
    )
    assert (during, after) == ([], [batch])


async def attempt(
    pool: async_sessionmaker[AsyncSession], billing: ScriptedBilling, batch: int
) -> submission.Attempt:
    now = datetime.now(UTC)
    [claimed] = await submission.claim_due(
        pool, "w", now=now + timedelta(days=1), lease=LEASE, limit=1, pending=True
    )
    assert claimed == batch
    return await submission.attempt(
        pool,
        billing,  # type: ignore[arg-type]
        CredentialsProvider(VAULT),
        batch,
        worker_id="w",
        policy=RetryPolicy(base=1.0, ceiling=8.0, give_up_after=timedelta(days=365)),
        now=now,
    )


async def test_an_unknown_outcome_is_retried_with_the_same_key_and_retry_after_is_honoured(
    pool: async_sessionmaker[AsyncSession],
) -> None:
    [batch] = await write_batches(pool, 1)
    billing = ScriptedBilling(
        BillingUnavailable("timed out after billing may have committed"),
        TooManyAttempts("slow down", retry_after=30),
        None,
    )
    before = datetime.now(UTC)
    first = await attempt(pool, billing, batch)
    assert first.result.status == SubmissionStatus.PENDING
    second = await attempt(pool, billing, batch)
    async with pool() as session:
        row = await session.get(Submission, batch)
        assert row is not None and row.next_attempt_at is not None
        waited = submission._aware(row.next_attempt_at) - before
    assert second.result.status == SubmissionStatus.PENDING
    assert waited >= timedelta(seconds=30), "no retry before Retry-After"
    third = await attempt(pool, billing, batch)
    assert third.result.status == SubmissionStatus.SENT and third.result.accepted == 1
    assert len(billing.keys) == 3 and len(set(billing.keys)) == 1


def test_backoff_grows_with_jitter_up_to_the_ceiling() -> None:
    policy = RetryPolicy(base=2.0, ceiling=60.0)
    waits = [policy.delay(attempts) for attempts in range(1, 12)]
    assert 1.0 <= waits[0] <= 2.0
    assert 8.0 <= waits[3] <= 16.0
    assert all(30.0 <= wait <= 60.0 for wait in waits[6:])
    assert len({round(policy.delay(3), 6) for _ in range(20)}) > 1, "jittered"


async def test_a_settled_batch_nobody_was_told_about_is_told_at_start(
    pool: async_sessionmaker[AsyncSession],
) -> None:
    [batch] = await write_batches(pool, 1)
    async with pool() as session:
        # As a crash leaves it: settled by billing's answer, the inspector not told.
        await session.execute(
            update(Submission)
            .where(Submission.id == batch)
            .values(status=SubmissionStatus.SENT, accepted_count=1, next_attempt_at=T0)
        )
        await session.commit()
    billing = ScriptedBilling()
    told: asyncio.Queue[BatchResult] = asyncio.Queue()
    hooked: list[int] = []

    async def hook(submission_id: int) -> None:
        hooked.append(submission_id)

    outbox = outbox_for(pool, billing)
    outbox.on_finished.append(hook)
    outbox.start(told.put)
    try:
        result = await asyncio.wait_for(told.get(), 10)
    finally:
        await outbox.stop()
    assert (result.submission_id, result.chat_id, result.address) == (batch, 7, "Ленина, 1")
    assert hooked == [batch] and billing.keys == []
    async with pool() as session:
        row = await session.get(Submission, batch)
        assert row is not None and row.notified_at is not None and row.next_attempt_at is None


async def test_a_waiting_handler_gets_the_result_and_no_message_is_sent(
    pool: async_sessionmaker[AsyncSession],
) -> None:
    [batch] = await write_batches(pool, 1)
    messages: list[BatchResult] = []

    async def notify(result: BatchResult) -> None:
        messages.append(result)

    outbox = outbox_for(pool, ScriptedBilling())
    outbox.start(notify)
    try:
        results = await outbox.wait_for([batch], 10, chat_id=7)
        await outbox.shown(results, chat_id=7)
    finally:
        await outbox.stop()
    assert results[batch].status == SubmissionStatus.SENT
    assert messages == []
    async with pool() as session:
        status = await session.scalar(select(Submission.notified_at).where(Submission.id == batch))
    assert status is not None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_failures_probes_once_and_closes_on_success() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown=10, max_cooldown=40, clock=clock)
    states = []
    for _ in range(2):
        breaker.record_failure()
    states.append(breaker.state)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.is_open and not breaker.allow()
    breaker.record_failure()  # a call that was in flight when it opened
    clock.now = 10
    states.append(breaker.state)
    assert breaker.allow() and not breaker.allow(), "one probe at a time"
    breaker.record_failure(probe=True)
    assert breaker.seconds_until_probe() == 20, "a failed probe doubles the cooldown"
    clock.now = 30
    assert breaker.allow()
    breaker.record_success()
    states.append(breaker.state)
    assert states == [BreakerState.CLOSED, BreakerState.HALF_OPEN, BreakerState.CLOSED]
    assert not breaker.is_open


def test_breaker_waits_as_long_as_billing_asked() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=5, max_cooldown=300, clock=clock)
    breaker.record_failure(retry_after=120)
    assert breaker.seconds_until_probe() == 120
