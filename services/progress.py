"""Progress of the period for the supervisor: /status, and the morning digest.

Every building of the account is one of: sent (when, by whom), in progress
(K of M slots done), not started. The period is the company's current month.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_client.models import Building
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
from storage.sqlite_driver import off_the_loop

log = logging.getLogger(__name__)

STATUS_PAGE_SIZE = 25
DONE_STATUSES = (SlotStatus.FILLED, SlotStatus.SENDING, SlotStatus.ACCEPTED, SlotStatus.SKIPPED)


class Stage(StrEnum):
    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    SENT = "sent"


@dataclass(frozen=True, slots=True)
class BuildingProgress:
    building_id: str
    address: str
    stage: Stage
    done: int = 0
    total: int = 0
    sent_at: datetime | None = None  # the last send, in the company's time zone
    sent_by: str | None = None


@dataclass(frozen=True, slots=True)
class StatusPage:
    period: str
    items: list[BuildingProgress]
    page: int
    pages: int
    sent: int
    in_progress: int
    not_started: int


def current_period(now: datetime, tz: ZoneInfo) -> str:
    """The company's current month as a period (YYYY-MM)."""
    local = now.astimezone(tz)
    return f"{local.year:04d}-{local.month:02d}"


async def period_progress(
    session: AsyncSession,
    account_id: str,
    buildings: Sequence[Building],
    period: str,
    tz: ZoneInfo,
) -> list[BuildingProgress]:
    """Each building's stage, not started first, then in progress, then sent.

    The slots are counted off the event loop (a whole account's: a million slots at
    10,000 buildings), so that inspectors are answered meanwhile.
    """
    drafts = {
        d.building_id: d
        for d in await session.scalars(
            select(Draft).where(Draft.account_id == account_id, Draft.period == period)
        )
    }
    draft_ids = [d.id for d in drafts.values()]
    done: dict[int, int] = {}
    total: dict[int, int] = {}
    last_send: dict[int, tuple[datetime, int]] = {}
    if draft_ids:
        with off_the_loop():
            rows = await session.execute(
                select(DraftSlot.draft_id, DraftSlot.status, func.count())
                .where(DraftSlot.draft_id.in_(draft_ids))
                .group_by(DraftSlot.draft_id, DraftSlot.status)
            )
        for draft_id, status, count in rows.all():
            total[draft_id] = total.get(draft_id, 0) + int(count)
            if status in DONE_STATUSES:
                done[draft_id] = done.get(draft_id, 0) + int(count)
        sends = await session.execute(
            select(Submission.draft_id, Submission.finished_at, Submission.created_by)
            .where(
                Submission.draft_id.in_(draft_ids),
                Submission.status == SubmissionStatus.SENT,
            )
            .order_by(Submission.finished_at)
        )
        for draft_id, finished_at, created_by in sends.all():
            if finished_at is not None:
                last_send[draft_id] = (as_utc(finished_at), created_by)
    names = await _names(session, {who for _, who in last_send.values()})
    result: list[BuildingProgress] = []
    for building in buildings:
        draft = drafts.get(building.id)
        if draft is None:
            result.append(BuildingProgress(building.id, building.address, Stage.NOT_STARTED))
            continue
        k, m = done.get(draft.id, 0), total.get(draft.id, 0)
        if draft.id in last_send:
            at, who = last_send[draft.id]
            result.append(
                BuildingProgress(
                    building.id,
                    building.address,
                    Stage.SENT,
                    k,
                    m,
                    at.astimezone(tz),
                    names.get(who, str(who)),
                )
            )
        elif k:
            result.append(BuildingProgress(building.id, building.address, Stage.IN_PROGRESS, k, m))
        else:
            result.append(BuildingProgress(building.id, building.address, Stage.NOT_STARTED, k, m))
    order = {Stage.NOT_STARTED: 0, Stage.IN_PROGRESS: 1, Stage.SENT: 2}
    result.sort(key=lambda item: order[item.stage])
    return result


async def _names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.execute(
        select(TelegramUser.id, TelegramUser.full_name, TelegramUser.username).where(
            TelegramUser.id.in_(ids)
        )
    )
    return {
        user_id: (f"{name} (@{username})" if username else name) or str(user_id)
        for user_id, name, username in rows.all()
    }


def status_page(
    items: Sequence[BuildingProgress], period: str, page: int, size: int | None = None
) -> StatusPage:
    """One page of /status (pages count from 0; out of range clamps)."""
    size = size or STATUS_PAGE_SIZE
    pages = max(1, -(-len(items) // size))
    page = min(max(page, 0), pages - 1)
    return StatusPage(
        period=period,
        items=list(items[page * size : (page + 1) * size]),
        page=page,
        pages=pages,
        sent=sum(1 for i in items if i.stage == Stage.SENT),
        in_progress=sum(1 for i in items if i.stage == Stage.IN_PROGRESS),
        not_started=sum(1 for i in items if i.stage == Stage.NOT_STARTED),
    )


# --- the morning digest --------------------------------------------------------------


def in_window(day: date, start_day: int, end_day: int) -> bool:
    """Whether a local day falls in the submission window (inclusive; may wrap the month)."""
    if start_day <= end_day:
        return start_day <= day.day <= end_day
    return day.day >= start_day or day.day <= end_day


def digest_due(
    now: datetime, tz: ZoneInfo, *, start_day: int, end_day: int, hour: int
) -> date | None:
    """The local day whose digest is due now, or None.

    Due from `hour` on during a window day (a bot started at 11:00 still sends that
    morning's digest); the queue's key (account, day) makes it once a day.
    """
    local = now.astimezone(tz)
    if not in_window(local.date(), start_day, end_day):
        return None
    if local.hour < hour:
        return None
    return local.date()


async def digest_accounts(session: AsyncSession, default_chat_id: int | None) -> dict[str, int]:
    """Accounts that get a digest, and their group: bound groups, else the default."""
    groups = {
        account_id: chat_id
        for account_id, chat_id in (
            await session.execute(select(GroupBinding.account_id, GroupBinding.chat_id))
        ).all()
    }
    if default_chat_id is not None:
        linked = await session.scalars(
            select(TelegramUser.account_id)
            .where(TelegramUser.account_id.is_not(None), TelegramUser.revoked_at.is_(None))
            .distinct()
        )
        for account_id in linked:
            if account_id is not None:
                groups.setdefault(account_id, default_chat_id)
    return groups
