"""Sending a draft to billing through an outbox: written once, sent until settled.

A batch and its idempotency key are committed before the first attempt, so a
crash, a timeout after billing committed, or a second press of «Отправить»
never sends a reading twice: every retry carries the same key and body.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing_client.base import Billing
from billing_client.errors import (
    BillingError,
    BillingUnavailable,
    TooManyAttempts,
)
from billing_client.models import ReadingIn, SubmitResult
from services.credentials import AccountNotLinked, CredentialsProvider
from services.walk import reset_sending
from storage.models import Draft, DraftSlot, SlotStatus, Submission, SubmissionStatus

log = logging.getLogger(__name__)

# The first attempt is made by the handler at once; the worker leaves a fresh
# batch alone this long so the two do not race for it.
HANDLER_GRACE = timedelta(seconds=60)
BACKOFF_BASE = 5.0
BACKOFF_MAX = 600.0
GIVE_UP_AFTER = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Rejected:
    apartment: str
    serial_number: str
    tariff: str | None
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What happened to a batch, for the inspector and the supervisor."""

    submission_id: int
    draft_id: int
    status: SubmissionStatus
    sent: int
    accepted: int
    rejected: list[Rejected]
    error: str | None = None


async def create_batch(
    session: AsyncSession, *, draft_id: int, user_id: int, chat_id: int, now: datetime
) -> int | None:
    """Claim every filled slot of the draft into a new batch; None if nothing waits.

    The claim is one conditional UPDATE, so two presses at once (or two inspectors)
    produce exactly one batch: the second finds no filled slot left.
    """
    submission = Submission(
        draft_id=draft_id,
        idempotency_key=str(uuid.uuid4()),
        payload="[]",
        status=SubmissionStatus.PENDING,
        created_by=user_id,
        chat_id=chat_id,
        created_at=now,
        next_attempt_at=now + HANDLER_GRACE,
    )
    session.add(submission)
    await session.flush()
    claimed = await session.execute(
        update(DraftSlot)
        .where(DraftSlot.draft_id == draft_id, DraftSlot.status == SlotStatus.FILLED)
        .values(status=SlotStatus.SENDING, submission_id=submission.id)
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        await session.rollback()
        return None
    rows = await session.execute(
        select(DraftSlot.meter_id, DraftSlot.value, DraftSlot.entered_at)
        .where(DraftSlot.submission_id == submission.id)
        .order_by(DraftSlot.position)
    )
    readings = [
        ReadingIn(meter_id=meter_id, value=value, taken_at=entered_at or now).model_dump(
            mode="json"
        )
        for meter_id, value, entered_at in rows.all()
    ]
    submission.payload = json.dumps(readings, ensure_ascii=False)
    await session.commit()
    return submission.id


async def pending_batches(session: AsyncSession, now: datetime) -> list[int]:
    """Batches due for an attempt (including ones a crash left behind)."""
    rows = await session.execute(
        select(Submission.id)
        .where(
            Submission.status == SubmissionStatus.PENDING,
            Submission.next_attempt_at <= now,
        )
        .order_by(Submission.id)
    )
    return list(rows.scalars())


async def pending_for_draft(session: AsyncSession, draft_id: int) -> list[int]:
    """Batches of this draft still waiting for billing (e.g. after an outage)."""
    rows = await session.execute(
        select(Submission.id)
        .where(Submission.draft_id == draft_id, Submission.status == SubmissionStatus.PENDING)
        .order_by(Submission.id)
    )
    return list(rows.scalars())


async def pending_count(session: AsyncSession) -> int:
    rows = await session.execute(
        select(Submission.id).where(Submission.status == SubmissionStatus.PENDING)
    )
    return len(rows.all())


async def attempt(
    session_pool: async_sessionmaker[AsyncSession],
    billing: Billing,
    credentials: CredentialsProvider,
    submission_id: int,
    *,
    now: datetime,
) -> BatchResult:
    """Send one pending batch once; settle it, or schedule the next attempt.

    Transient failures (billing down, timeouts with an unknown outcome, 429) keep
    the batch pending with the same key; anything else fails it for good and gives
    its slots back to the draft.
    """
    async with session_pool() as session:
        submission = await session.get(Submission, submission_id)
        if submission is None:
            msg = f"submission {submission_id} does not exist"
            raise LookupError(msg)
        if submission.status != SubmissionStatus.PENDING:
            return await describe(session, submission_id)
        draft = await session.get(Draft, submission.draft_id)
        assert draft is not None
        readings = [ReadingIn.model_validate(item) for item in json.loads(submission.payload)]
        submission.attempts += 1
        try:
            auth = await credentials.auth_for(session, draft.account_id)
            result = await billing.submit(
                auth, draft.building_id, readings, submission.idempotency_key
            )
        except (BillingUnavailable, TooManyAttempts) as exc:
            delay = _backoff(submission.attempts, exc)
            if now - _aware(submission.created_at) > GIVE_UP_AFTER:
                return await _fail(session, submission, "billing unavailable for too long", now)
            submission.next_attempt_at = now + timedelta(seconds=delay)
            submission.last_error = type(exc).__name__
            await session.commit()
            log.warning(
                "Batch %s not sent (%s), attempt %s; next in %.0f s",
                submission_id,
                type(exc).__name__,
                submission.attempts,
                delay,
            )
            return await describe(session, submission_id, error=type(exc).__name__)
        except (BillingError, AccountNotLinked) as exc:
            log.error("Batch %s failed for good: %s", submission_id, type(exc).__name__)
            return await _fail(session, submission, str(exc)[:500], now)
        await _apply(session, submission, result, now)
        return await describe(session, submission_id)


def _aware(moment: datetime) -> datetime:
    # SQLite gives back naive datetimes; every moment this project stores is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _backoff(attempts: int, exc: BillingError) -> float:
    if isinstance(exc, TooManyAttempts):
        return max(exc.retry_after, BACKOFF_BASE)
    ceiling = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** min(attempts, 10))
    return random.uniform(ceiling / 2, ceiling)


async def _apply(
    session: AsyncSession, submission: Submission, result: SubmitResult, now: datetime
) -> None:
    rejected = {item.meter_id: item for item in result.rejected}
    accepted = set(result.accepted)
    rows = (
        await session.execute(select(DraftSlot).where(DraftSlot.submission_id == submission.id))
    ).scalars()
    for row in rows:
        if row.status != SlotStatus.SENDING:
            continue
        if row.meter_id in accepted:
            row.status = SlotStatus.ACCEPTED
        elif row.meter_id in rejected:
            row.status = SlotStatus.REJECTED
            row.rejection_code = rejected[row.meter_id].code
            row.rejection_message = rejected[row.meter_id].message[:500]
        else:
            # Billing said nothing of it: keep it for the next send rather than lose it.
            row.status = SlotStatus.FILLED
            row.submission_id = None
    submission.status = SubmissionStatus.SENT
    submission.billing_submission_id = result.submission_id
    submission.accepted_count = len(accepted)
    submission.rejected_count = len(rejected)
    submission.finished_at = now
    submission.next_attempt_at = None
    submission.last_error = None
    await session.commit()


async def _fail(
    session: AsyncSession, submission: Submission, error: str, now: datetime
) -> BatchResult:
    await reset_sending(session, submission.id)
    submission.status = SubmissionStatus.FAILED
    submission.finished_at = now
    submission.next_attempt_at = None
    submission.last_error = error
    await session.commit()
    return await describe(session, submission.id, error=error)


async def describe(
    session: AsyncSession, submission_id: int, *, error: str | None = None
) -> BatchResult:
    """The batch's current state with its rejections (apartment and reason)."""
    submission = await session.get(Submission, submission_id)
    assert submission is not None
    sent = len(json.loads(submission.payload))
    rejected: list[Rejected] = []
    if submission.status == SubmissionStatus.SENT and submission.rejected_count:
        rows = await session.execute(
            select(DraftSlot)
            .where(
                DraftSlot.submission_id == submission_id,
                DraftSlot.status == SlotStatus.REJECTED,
            )
            .order_by(DraftSlot.position)
        )
        rejected = [
            Rejected(
                row.apartment,
                row.serial_number,
                row.tariff,
                row.rejection_code or "",
                row.rejection_message or "",
            )
            for row in rows.scalars()
        ]
    return BatchResult(
        submission_id=submission.id,
        draft_id=submission.draft_id,
        status=SubmissionStatus(submission.status),
        sent=sent,
        accepted=submission.accepted_count,
        rejected=rejected,
        error=error or submission.last_error,
    )
