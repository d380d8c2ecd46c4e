"""The supervisor's summary of one finished batch: its facts, its messages, its file.

`enqueue_submission_summary` is the one hook to call where a batch's final outcome
is known: it renders the summary into messages of at most 4096 characters (never
cutting a line), attaches the filled template .xlsx and puts everything into the
group post queue (services/group_posts.py), which delivers it at the group's pace.
`SummarySweeper` queues, once a minute, any settled batch's summary that the hook
never queued (a crash in between, or batches settled by another sender).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import texts
from billing_client.models import Building, Meter, Previous
from billing_client.template import submission_template
from services import group_posts
from services.moments import as_utc
from storage.models import (
    Draft,
    DraftSlot,
    GroupBinding,
    SlotStatus,
    Submission,
    SubmissionStatus,
    TelegramUser,
)

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 4096
# Room kept in every part for the «continued (i/n)» line the later parts start with.
CONTINUATION_RESERVE = 120
# The sweep for summaries that were never queued: how far back, and how often.
SWEEP_LOOKBACK = timedelta(hours=24)
SWEEP_INTERVAL = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class SlotRef:
    apartment: str
    serial_number: str
    tariff: str | None
    note: str = ""  # the rejection's reason, or the warning kind


@dataclass(frozen=True, slots=True)
class SubmissionSummary:
    """Everything the supervisor is told about one batch."""

    submission_id: int
    account_id: str
    address: str
    period: str
    inspector_name: str
    inspector_username: str | None
    finished_at: datetime  # in the company's time zone
    status: SubmissionStatus
    sent: int
    total: int
    accepted: int
    rejected: list[SlotRef]
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> apartments
    kept_after_warning: dict[str, list[str]] = field(default_factory=dict)  # kind -> apartments
    error: str | None = None


async def load_summary(
    session: AsyncSession, submission_id: int, tz: ZoneInfo
) -> SubmissionSummary | None:
    """The summary of a settled batch (None while it is still pending)."""
    submission = await session.get(Submission, submission_id)
    if submission is None or submission.status == SubmissionStatus.PENDING:
        return None
    draft = await session.get(Draft, submission.draft_id)
    assert draft is not None
    inspector = await session.get(TelegramUser, submission.created_by)
    sent_ids = {item["meter_id"] for item in json.loads(submission.payload)}
    slots = list(
        await session.scalars(
            select(DraftSlot).where(DraftSlot.draft_id == draft.id).order_by(DraftSlot.position)
        )
    )
    rejected = [
        SlotRef(s.apartment, s.serial_number, s.tariff, s.rejection_message or "")
        for s in slots
        if s.submission_id == submission_id and s.status == SlotStatus.REJECTED
    ]
    skipped: dict[str, list[str]] = defaultdict(list)
    kept: dict[str, list[str]] = defaultdict(list)
    for s in slots:
        if s.status == SlotStatus.SKIPPED:
            skipped[s.skip_reason or "none"].append(s.apartment)
        elif s.meter_id in sent_ids and s.warning:
            kept[s.warning].append(s.apartment)
    return SubmissionSummary(
        submission_id=submission.id,
        account_id=draft.account_id,
        address=draft.address,
        period=draft.period,
        inspector_name=inspector.full_name if inspector else str(submission.created_by),
        inspector_username=inspector.username if inspector else None,
        finished_at=as_utc(submission.finished_at or submission.created_at).astimezone(tz),
        status=SubmissionStatus(submission.status),
        sent=len(sent_ids),
        total=draft.slots_total,
        accepted=submission.accepted_count,
        rejected=rejected,
        skipped={reason: _unique(apts) for reason, apts in skipped.items()},
        kept_after_warning={kind: _unique(apts) for kind, apts in kept.items()},
        error=submission.last_error if submission.status == SubmissionStatus.FAILED else None,
    )


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def split_lines(lines: Sequence[str], limit: int = MESSAGE_LIMIT) -> list[str]:
    """Join lines into messages of at most `limit` characters, never cutting a line.

    A single line longer than `limit` (which the summary never builds) is cut at
    the limit rather than refused by Telegram.
    """
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        pieces = [line[i : i + limit] for i in range(0, len(line), limit)] or [""]
        for piece in pieces:
            extra = len(piece) + (1 if current else 0)
            if current and size + extra > limit:
                parts.append("\n".join(current))
                current, size = [], 0
                extra = len(piece)
            current.append(piece)
            size += extra
    if current:
        parts.append("\n".join(current))
    return parts


def summary_messages(summary: SubmissionSummary) -> list[str]:
    """The summary as Telegram messages (HTML), each at most 4096 characters."""
    parts = split_lines(texts.summary_lines(summary), MESSAGE_LIMIT - CONTINUATION_RESERVE)
    if len(parts) == 1:
        return parts
    return [
        part if index == 0 else f"{texts.summary_continued(summary, index + 1, len(parts))}\n{part}"
        for index, part in enumerate(parts)
    ]


async def summary_workbook(session: AsyncSession, submission_id: int, tz: ZoneInfo) -> bytes:
    """The batch as the filled template .xlsx: every slot of the building, the values
    exactly as sent, and the skip reasons on the «Примечания» sheet."""
    submission = await session.get(Submission, submission_id)
    assert submission is not None
    draft = await session.get(Draft, submission.draft_id)
    assert draft is not None
    slots = list(
        await session.scalars(
            select(DraftSlot).where(DraftSlot.draft_id == draft.id).order_by(DraftSlot.position)
        )
    )
    building = Building(
        id=draft.building_id,
        city=draft.city,
        street=draft.street or draft.address,
        house=draft.house,
        address=draft.address,
    )
    meters = [
        Meter(
            id=s.meter_id,
            apartment=s.apartment,
            serial_number=s.serial_number,
            digits=s.digits,
            fraction_digits=s.fraction_digits,
            tariff=s.tariff,
            previous=(
                Previous(value=s.previous_value, date=s.previous_date)
                if s.previous_value and s.previous_date
                else None
            ),
        )
        for s in slots
    ]
    values: dict[str, str] = {}
    taken_on: dict[str, date] = {}
    for item in json.loads(submission.payload):
        values[item["meter_id"]] = item["value"]
        taken_on[item["meter_id"]] = (
            as_utc(datetime.fromisoformat(item["taken_at"])).astimezone(tz).date()
        )
    reasons = {
        s.meter_id: texts.skip_reason_label(s.skip_reason)
        for s in slots
        if s.status == SlotStatus.SKIPPED
    }
    known = {meter.id for meter in meters}
    values = {k: v for k, v in values.items() if k in known}
    # Off the event loop: a 500-apartment building's file takes about a third of a
    # second to write, and every inspector's answers would wait for it.
    return await asyncio.to_thread(
        submission_template, building, meters, values, taken_on=taken_on, skip_reasons=reasons
    )


def workbook_filename(summary: SubmissionSummary) -> str:
    safe = "".join(ch if ch.isalnum() else "_" for ch in summary.address)[:60].strip("_")
    return f"{summary.period}_{safe or 'dom'}_{summary.submission_id}.xlsx"


def summary_key(submission_id: int) -> str:
    return f"summary:{submission_id}"


def summary_hook(
    session_pool: async_sessionmaker[AsyncSession], *, default_chat_id: int | None, tz: ZoneInfo
) -> Callable[[int], Awaitable[None]]:
    """The outbox's hook for a settled batch: queue its summary for the group."""

    async def enqueue(submission_id: int) -> None:
        async with session_pool() as session:
            await enqueue_submission_summary(
                session, submission_id, default_chat_id=default_chat_id, tz=tz
            )

    return enqueue


async def enqueue_submission_summary(
    session: AsyncSession,
    submission_id: int,
    *,
    default_chat_id: int | None,
    tz: ZoneInfo,
    now: datetime | None = None,
) -> int:
    """Queue the summary of a settled batch for its account's group; commits.

    Call it once the batch's final outcome is known (sent or failed). The group is
    the account's bound group, else `default_chat_id` (SUPERVISOR_CHAT_ID). Safe to
    call twice: the posts are keyed by the batch. Returns the number of posts queued.
    """
    summary = await load_summary(session, submission_id, tz)
    if summary is None:
        return 0
    chat_id = await group_posts.group_of(session, summary.account_id) or default_chat_id
    if chat_id is None:
        log.info(
            "No group for account %s: summary of batch %s not posted",
            summary.account_id,
            submission_id,
        )
        return 0
    messages = summary_messages(summary)
    posts: list[group_posts.Post] = [group_posts.Post(text=message) for message in messages]
    if summary.status == SubmissionStatus.SENT and summary.sent:
        document = await summary_workbook(session, submission_id, tz)
        posts.append(
            group_posts.Post(
                text=texts.summary_document_caption(summary),
                document=document,
                filename=workbook_filename(summary),
            )
        )
    return await group_posts.enqueue(
        session,
        chat_id=chat_id,
        account_id=summary.account_id,
        key=summary_key(submission_id),
        posts=posts,
        now=now or datetime.now(UTC),
    )


async def enqueue_missing_summaries(
    session: AsyncSession,
    *,
    default_chat_id: int | None,
    tz: ZoneInfo,
    now: datetime,
    lookback: timedelta = SWEEP_LOOKBACK,
) -> int:
    """Queue the summaries of batches settled lately that have none; commits.

    The safety net behind the hook: a crash between a batch's settling and its
    summary, or a sender that settles batches elsewhere (a background worker),
    still ends with a summary in the group. Returns the number of batches queued.
    """
    query = select(Submission.id).where(
        Submission.status.in_((SubmissionStatus.SENT, SubmissionStatus.FAILED)),
        Submission.finished_at >= now - lookback,
    )
    if default_chat_id is None:
        # Only companies with a group: the others' batches would be loaded again at
        # every sweep, to find nowhere to post them.
        query = query.join(Draft, Draft.id == Submission.draft_id).where(
            Draft.account_id.in_(select(GroupBinding.account_id))
        )
    settled = await session.scalars(query.order_by(Submission.id))
    queued = 0
    for submission_id in list(settled):
        if await group_posts.queued(session, summary_key(submission_id)):
            continue
        if await enqueue_submission_summary(
            session, submission_id, default_chat_id=default_chat_id, tz=tz, now=now
        ):
            log.warning("Summary of batch %s was missing: queued now", submission_id)
            queued += 1
    return queued


class SummarySweeper:
    """Runs `enqueue_missing_summaries` at most every `interval` (a poster's on_tick)."""

    def __init__(
        self,
        session_pool: async_sessionmaker[AsyncSession],
        *,
        default_chat_id: int | None,
        tz: ZoneInfo,
        interval: timedelta = SWEEP_INTERVAL,
    ) -> None:
        self._pool = session_pool
        self._default_chat_id = default_chat_id
        self._tz = tz
        self._interval = interval
        self._last: datetime | None = None

    async def __call__(self) -> int:
        now = datetime.now(UTC)
        if self._last is not None and now - self._last < self._interval:
            return 0
        self._last = now
        async with self._pool() as session:
            return await enqueue_missing_summaries(
                session, default_chat_id=self._default_chat_id, tz=self._tz, now=now
            )
