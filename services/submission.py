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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, and_, case, func, or_, select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

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

BACKOFF_BASE = 5.0
BACKOFF_MAX = 600.0
GIVE_UP_AFTER = timedelta(hours=24)
# last_error of a batch that billing never answered within GIVE_UP_AFTER
GAVE_UP = "billing unavailable for too long"


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
    chat_id: int = 0  # where the inspector pressed «Отправить»
    address: str = ""


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
        next_attempt_at=now,  # due at once: the outbox worker sends it
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


async def claim_due(
    session_pool: async_sessionmaker[AsyncSession],
    worker_id: str,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    pending: bool,
) -> list[int]:
    """Lease up to `limit` rows the worker is due to act on; no one else gets them.

    pending=True: batches due for a send; False: finished batches whose inspector
    has not been told yet. A row is free when nobody holds it or its lease ran out
    (the worker that held it crashed). On PostgreSQL the candidates are locked
    with SELECT … FOR UPDATE SKIP LOCKED, so two instances never wait on each
    other; SQLite (one writer at a time) ignores that clause, and the conditional
    UPDATE … RETURNING alone decides: a row leased meanwhile is not returned.
    """
    if limit <= 0:
        return []
    is_pending = Submission.status == SubmissionStatus.PENDING
    due = and_(
        is_pending if pending else ~is_pending,
        Submission.next_attempt_at.is_not(None),
        Submission.next_attempt_at <= now,
        or_(Submission.claimed_until.is_(None), Submission.claimed_until < now),
    )
    async with session_pool() as session:
        candidates = (
            await session.execute(
                select(Submission.id)
                .where(due)
                .order_by(Submission.next_attempt_at, Submission.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).scalars()
        ids = list(candidates)
        if not ids:
            await session.rollback()
            return []
        claimed = await session.execute(
            update(Submission)
            .where(Submission.id.in_(ids), due)
            .values(claimed_by=worker_id, claimed_until=now + lease)
            .returning(Submission.id)
            .execution_options(synchronize_session=False)
        )
        got = sorted(claimed.scalars())
        await session.commit()
        return got


async def next_due(
    session_pool: async_sessionmaker[AsyncSession], *, pending: bool
) -> datetime | None:
    """When the earliest row becomes due or its lease runs out (None: no work left)."""
    is_pending = Submission.status == SubmissionStatus.PENDING
    # A leased row is due when its time has come and its lease has run out.
    free_at = case(
        (Submission.claimed_until > Submission.next_attempt_at, Submission.claimed_until),
        else_=Submission.next_attempt_at,
    )
    async with session_pool() as session:
        moment = await session.scalar(
            select(func.min(type_coerce(free_at, DateTime(timezone=True)))).where(
                Submission.next_attempt_at.is_not(None), is_pending if pending else ~is_pending
            )
        )
    return _aware(moment) if moment is not None else None


async def _update_rows(
    session_pool: async_sessionmaker[AsyncSession],
    ids: Iterable[int],
    *conditions: ColumnElement[bool],
    **values: object,
) -> None:
    wanted = list(ids)
    if not wanted:
        return
    async with session_pool() as session:
        await session.execute(
            update(Submission)
            .where(Submission.id.in_(wanted), *conditions)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        await session.commit()


async def renew(
    session_pool: async_sessionmaker[AsyncSession],
    worker_id: str,
    ids: Iterable[int],
    *,
    until: datetime,
) -> None:
    """Extend the worker's leases on rows it is still working on."""
    await _update_rows(session_pool, ids, Submission.claimed_by == worker_id, claimed_until=until)


async def release(
    session_pool: async_sessionmaker[AsyncSession],
    worker_id: str,
    ids: Iterable[int],
    *,
    due_at: datetime | None = None,
) -> None:
    """Give the worker's leases back (at shutdown, or after a failed notification).

    `due_at` moves the next look at the row; without it the row stays due.
    """
    values: dict[str, object] = {"claimed_by": None, "claimed_until": None}
    if due_at is not None:
        values["next_attempt_at"] = due_at
    await _update_rows(
        session_pool,
        ids,
        Submission.claimed_by == worker_id,
        Submission.next_attempt_at.is_not(None),
        **values,
    )


async def mark_notified(
    session_pool: async_sessionmaker[AsyncSession],
    ids: Iterable[int],
    *,
    now: datetime,
    chat_id: int | None = None,
) -> None:
    """The inspector has been told these finished batches' outcome: nothing left to do.

    chat_id: only batches written from that chat (another inspector's screen
    does not count as telling the one who sent it).
    """
    chat = [] if chat_id is None else [Submission.chat_id == chat_id]
    await _update_rows(
        session_pool,
        ids,
        Submission.status != SubmissionStatus.PENDING,
        *chat,
        notified_at=now,
        next_attempt_at=None,
        claimed_by=None,
        claimed_until=None,
    )


async def hurry(session: AsyncSession, ids: Iterable[int], *, now: datetime) -> None:
    """Make pending batches due now (the inspector pressed «Отправить» again)."""
    wanted = list(ids)
    if not wanted:
        return
    await session.execute(
        update(Submission)
        .where(Submission.id.in_(wanted), Submission.status == SubmissionStatus.PENDING)
        .values(next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.commit()


async def pending_for_draft(session: AsyncSession, draft_id: int) -> list[int]:
    """Batches of this draft still waiting for billing (e.g. after an outage)."""
    rows = await session.execute(
        select(Submission.id)
        .where(Submission.draft_id == draft_id, Submission.status == SubmissionStatus.PENDING)
        .order_by(Submission.id)
    )
    return list(rows.scalars())


async def pending_count(session: AsyncSession) -> int:
    """How many batches wait for billing (for /status and health checks)."""
    count = await session.scalar(
        select(func.count(Submission.id)).where(Submission.status == SubmissionStatus.PENDING)
    )
    return int(count or 0)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How the outbox spaces out attempts of one batch."""

    base: float = BACKOFF_BASE
    ceiling: float = BACKOFF_MAX
    give_up_after: timedelta = GIVE_UP_AFTER

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds until the next attempt: Retry-After if billing gave one, else
        exponential backoff with "equal jitter" (half fixed, half random), so the
        waits really grow and many batches do not retry in step.
        """
        if retry_after is not None:
            # Never earlier than asked; a little later, so that batches told the
            # same moment do not all arrive at once.
            return retry_after + random.uniform(0, min(1.0, retry_after * 0.1))
        step = min(self.ceiling, self.base * 2.0 ** min(max(attempts - 1, 0), 30))
        return step / 2 + random.uniform(0, step / 2)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One send: the batch's state afterwards, and the transient failure if any."""

    result: BatchResult
    transient: BillingError | None = None
    sent: bool = True  # False: the row was not this worker's to send (anymore)


async def attempt(
    session_pool: async_sessionmaker[AsyncSession],
    billing: Billing,
    credentials: CredentialsProvider,
    submission_id: int,
    *,
    worker_id: str,
    policy: RetryPolicy,
    now: datetime,
) -> Attempt:
    """Send one leased pending batch once; settle it, or schedule the next attempt.

    Transient failures (billing down, a timeout whose outcome is unknown, 429)
    keep the batch pending with the same key and body, to be sent again after a
    backoff (or the Retry-After billing asked for); anything else fails it for
    good and gives its slots back to the draft. Settling is conditional on the
    batch still being pending, so two workers can never settle it twice.
    """
    async with session_pool() as session:
        submission = await session.get(Submission, submission_id)
        if submission is None:
            msg = f"submission {submission_id} does not exist"
            raise LookupError(msg)
        if submission.status != SubmissionStatus.PENDING or submission.claimed_by != worker_id:
            return Attempt(await describe(session, submission_id), sent=False)
        draft = await session.get(Draft, submission.draft_id)
        assert draft is not None
        readings = [ReadingIn.model_validate(item) for item in json.loads(submission.payload)]
        submission.attempts += 1
        attempts = submission.attempts
        key = submission.idempotency_key
        created_at = _aware(submission.created_at)
        # Counted before the call: a batch that crashes the process every time shows it.
        await session.commit()
        try:
            auth = await credentials.auth_for(session, draft.account_id)
            result = await billing.submit(auth, draft.building_id, readings, key)
        except (BillingUnavailable, TooManyAttempts) as exc:
            later = datetime.now(UTC)
            if later - created_at > policy.give_up_after:
                log.error("Batch %s: billing unavailable for too long, giving up", submission_id)
                failed = await _fail(session, submission_id, GAVE_UP)
                return Attempt(failed, transient=exc)
            delay = policy.delay(attempts, exc.retry_after)
            await session.execute(
                update(Submission)
                .where(
                    Submission.id == submission_id,
                    Submission.status == SubmissionStatus.PENDING,
                    Submission.claimed_by == worker_id,
                )
                .values(
                    next_attempt_at=later + timedelta(seconds=delay),
                    last_error=type(exc).__name__,
                    claimed_by=None,
                    claimed_until=None,
                )
                .execution_options(synchronize_session=False)
            )
            await session.commit()
            log.warning(
                "Batch %s not sent (%s), attempt %s; next in %.1f s",
                submission_id,
                type(exc).__name__,
                attempts,
                delay,
            )
            return Attempt(await describe(session, submission_id), transient=exc)
        except (BillingError, AccountNotLinked) as exc:
            log.error("Batch %s failed for good: %s", submission_id, type(exc).__name__)
            return Attempt(await _fail(session, submission_id, str(exc)[:500]))
        await _apply(session, submission_id, result)
        return Attempt(await describe(session, submission_id))


def _aware(moment: datetime) -> datetime:
    # SQLite gives back naive datetimes; every moment this project stores is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _settle(
    session: AsyncSession, submission_id: int, status: SubmissionStatus, **values: object
) -> bool:
    """Move the batch out of PENDING, only if it still is (False: someone else did)."""
    now = datetime.now(UTC)
    settled = await session.execute(
        update(Submission)
        .where(Submission.id == submission_id, Submission.status == SubmissionStatus.PENDING)
        .values(
            status=status,
            finished_at=now,
            # Due at once: the inspector is told next (see Outbox).
            next_attempt_at=now,
            **values,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(settled.rowcount)  # type: ignore[attr-defined]


async def _apply(session: AsyncSession, submission_id: int, result: SubmitResult) -> None:
    rejected = {item.meter_id: item for item in result.rejected}
    accepted = set(result.accepted)
    settled = await _settle(
        session,
        submission_id,
        SubmissionStatus.SENT,
        billing_submission_id=result.submission_id,
        accepted_count=len(accepted),
        rejected_count=len(rejected),
        last_error=None,
    )
    if not settled:
        await session.rollback()
        return
    rows = (
        await session.execute(select(DraftSlot).where(DraftSlot.submission_id == submission_id))
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
    await session.commit()


async def _fail(session: AsyncSession, submission_id: int, error: str) -> BatchResult:
    await session.rollback()
    if await _settle(session, submission_id, SubmissionStatus.FAILED, last_error=error):
        await reset_sending(session, submission_id)
        await session.commit()
    else:
        await session.rollback()
    return await describe(session, submission_id, error=error)


async def describe(
    session: AsyncSession, submission_id: int, *, error: str | None = None
) -> BatchResult:
    """The batch's current state with its rejections (apartment and reason)."""
    # populate_existing: the worker settles rows with plain UPDATEs, so a copy
    # already in this session may be stale.
    submission = await session.get(Submission, submission_id, populate_existing=True)
    assert submission is not None
    draft = await session.get(Draft, submission.draft_id)
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
        chat_id=submission.chat_id,
        address=draft.address if draft is not None else "",
    )
