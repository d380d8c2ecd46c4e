"""The walk through a building: its draft, one slot at a time, values and skips.

A draft is shared by every inspector of the account for one building and period;
each value is committed before the bot answers, so nothing typed is lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from billing_client.models import Building, BuildingMeters, Meter
from services.apartments import apartment_sort_key, find_apartment
from services.values import (
    PlausibilityWarning,
    ValueProblem,
    check_plausibility,
    parse_reading,
)
from storage.engine import upsert_insert
from storage.models import Draft, DraftSlot, SlotStatus

TARIFF_ORDER = {"день": 0, "пик": 0, "полупик": 1, "ночь": 2}

OPEN_STATUSES = (SlotStatus.EMPTY, SlotStatus.REJECTED)
EDITABLE_STATUSES = (
    SlotStatus.EMPTY,
    SlotStatus.FILLED,
    SlotStatus.SKIPPED,
    SlotStatus.REJECTED,
    SlotStatus.ACCEPTED,
)


class SkipReason(StrEnum):
    """Why a reading was not taken (the inspectors' own categories)."""

    NO_ACCESS = "no_access"
    BROKEN = "broken"
    UNREADABLE = "unreadable"
    REPLACED = "replaced"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Slot:
    """One value to enter, as the card shows it."""

    draft_id: int
    position: int
    meter_id: str
    apartment: str
    serial_number: str
    digits: int
    fraction_digits: int
    tariff: str | None
    previous_value: str | None
    previous_date: date | None
    status: SlotStatus
    value: str | None
    skip_reason: str | None
    warning: str | None
    rejection_message: str | None


@dataclass(frozen=True, slots=True)
class Progress:
    """Counts for the header and the review."""

    draft_id: int
    building_id: str
    address: str
    period: str
    apartments: int
    total: int
    filled: int  # a value is there: waiting, being sent or accepted
    skipped: int
    empty: int
    rejected: int
    to_send: int
    warnings: int

    @property
    def done(self) -> int:
        return self.filled + self.skipped


@dataclass(frozen=True, slots=True)
class Saved:
    slot: Slot


@dataclass(frozen=True, slots=True)
class NeedsConfirmation:
    slot: Slot
    value: str
    warning: PlausibilityWarning


@dataclass(frozen=True, slots=True)
class Refused:
    slot: Slot
    problem: ValueProblem


@dataclass(frozen=True, slots=True)
class NotEditable:
    """The slot's value is on its way to billing right now."""

    slot: Slot


ValueOutcome = Saved | NeedsConfirmation | Refused | NotEditable


class SlotGone(LookupError):
    """The card's meter has left the draft: billing no longer lists it."""


# The walk reads and writes one slot per keystroke: through the tables (plain rows and a
# plain UPDATE), not ORM objects, whose loading and flushing cost more than the query;
# and with statements built once here, whose building per call cost as much again.
SLOTS: Table = DraftSlot.__table__  # type: ignore[assignment]
DRAFTS: Table = Draft.__table__  # type: ignore[assignment]

_SLOT_AT = select(SLOTS).where(
    SLOTS.c.draft_id == bindparam("draft_id"), SLOTS.c.position == bindparam("position")
)
_SLOT_OF_METER = select(SLOTS).where(
    SLOTS.c.draft_id == bindparam("draft_id"), SLOTS.c.meter_id == bindparam("meter_id")
)
_NEXT_OPEN = (
    select(SLOTS)
    .where(
        SLOTS.c.draft_id == bindparam("draft_id"),
        SLOTS.c.position > bindparam("after"),
        SLOTS.c.status.in_(OPEN_STATUSES),
    )
    .order_by(SLOTS.c.position)
    .limit(1)
)
# count(warning) counts the slots whose value was kept after a warning; an empty slot
# never counts. A draft without slots gives one row with no status.
_PROGRESS = (
    select(
        DRAFTS.c.building_id,
        DRAFTS.c.address,
        DRAFTS.c.period,
        DRAFTS.c.apartments,
        SLOTS.c.status,
        func.count(SLOTS.c.id),
        func.count(SLOTS.c.warning),
    )
    .select_from(DRAFTS.outerjoin(SLOTS, SLOTS.c.draft_id == DRAFTS.c.id))
    .where(DRAFTS.c.id == bindparam("draft_id"))
    .group_by(DRAFTS.c.id, SLOTS.c.status)
)
_STORE = (
    update(SLOTS)
    .where(SLOTS.c.id == bindparam("slot_id"))
    .values(
        status=bindparam("status"),
        value=bindparam("value"),
        warning=bindparam("warning"),
        skip_reason=bindparam("skip_reason"),
        entered_by=bindparam("entered_by"),
        entered_at=bindparam("entered_at"),
        source_message_id=bindparam("source_message_id"),
        rejection_code=None,
        rejection_message=None,
    )
)


def _slot(row: Any) -> Slot:
    """A Slot from a row of draft_slots."""
    return Slot(
        draft_id=row.draft_id,
        position=row.position,
        meter_id=row.meter_id,
        apartment=row.apartment,
        serial_number=row.serial_number,
        digits=row.digits,
        fraction_digits=row.fraction_digits,
        tariff=row.tariff,
        previous_value=row.previous_value,
        previous_date=row.previous_date,
        status=SlotStatus(row.status),
        value=row.value,
        skip_reason=row.skip_reason,
        warning=row.warning,
        rejection_message=row.rejection_message,
    )


def _walking_order(meters: Sequence[Meter]) -> list[Meter]:
    return sorted(
        meters,
        key=lambda m: (
            apartment_sort_key(m.apartment),
            m.serial_number,
            TARIFF_ORDER.get((m.tariff or "").casefold(), 3),
            m.id,
        ),
    )


async def open_building(
    session: AsyncSession,
    *,
    account_id: str,
    building: Building,
    meters: BuildingMeters,
    now: datetime,
) -> Progress:
    """Create or refresh the building's draft from billing's slot list, keeping values.

    Slots that billing no longer lists are dropped unless a value waits in them (those
    then come after the listed ones); new ones are added; the walking order is recomputed.
    """
    draft = await _draft(session, account_id, building.id, meters.period)
    if draft is None:
        # Two inspectors may open a building nobody has opened yet at the same moment:
        # the later INSERT waits for the first one's commit and inserts nothing, and
        # both go on with the one draft and its slots.
        new_draft = upsert_insert(session.get_bind().dialect.name)(Draft)
        await session.execute(
            new_draft.values(
                account_id=account_id,
                building_id=building.id,
                period=meters.period,
                address=building.address,
                refreshed_at=now,
            ).on_conflict_do_nothing(
                index_elements=[Draft.account_id, Draft.building_id, Draft.period]
            )
        )
        draft = await _draft(session, account_id, building.id, meters.period)
        assert draft is not None
    # Openings of one draft take turns: this write waits for another opening's commit
    # (the row's lock on PostgreSQL, the write lock on SQLite), so the slots read below
    # include what it added. Two at once would both add a meter new in billing's list.
    await session.execute(update(DRAFTS).where(DRAFTS.c.id == draft.id).values(refreshed_at=now))
    rows = (
        (await session.execute(select(DraftSlot).where(DraftSlot.draft_id == draft.id)))
        .scalars()
        .all()
    )
    existing = {row.meter_id: row for row in rows}
    ordered = _walking_order(meters.meters)
    listed = {meter.id for meter in ordered}
    unlisted = sorted(
        (row for meter_id, row in existing.items() if meter_id not in listed),
        key=lambda row: (row.position, row.id),
    )
    droppable = (SlotStatus.EMPTY, SlotStatus.SKIPPED)
    gone = [row.id for row in unlisted if row.status in droppable]
    kept = [row for row in unlisted if row.status not in droppable]
    draft.address = building.address
    # The parts of the address go into the summary's template file.
    draft.city, draft.street, draft.house = building.city, building.street, building.house
    draft.refreshed_at = now
    draft.apartments = len({meter.apartment for meter in ordered})
    draft.slots_total = len(ordered) + len(kept)
    if gone:
        await session.execute(delete(DraftSlot).where(DraftSlot.id.in_(gone)))
    # A kept slot stays after the listed ones: at its old place it would share the
    # position of the meter listed there now, and a value typed on that meter's card
    # would go into it.
    positions = {meter.id: position for position, meter in enumerate(ordered)}
    positions.update({row.meter_id: len(ordered) + i for i, row in enumerate(kept)})
    await _move_slots(session, existing.values(), positions)
    new_rows = []
    for position, meter in enumerate(ordered):
        previous_value = meter.previous.value if meter.previous else None
        previous_date = meter.previous.date if meter.previous else None
        row = existing.get(meter.id)
        if row is None:
            new_rows.append(
                {
                    "draft_id": draft.id,
                    "position": position,
                    "meter_id": meter.id,
                    "apartment": meter.apartment,
                    "serial_number": meter.serial_number,
                    "digits": meter.digits,
                    "fraction_digits": meter.fraction_digits,
                    "tariff": meter.tariff,
                    "previous_value": previous_value,
                    "previous_date": previous_date,
                    "status": SlotStatus.EMPTY,
                }
            )
            continue
        row.apartment = meter.apartment
        row.serial_number = meter.serial_number
        row.digits = meter.digits
        row.fraction_digits = meter.fraction_digits
        row.tariff = meter.tariff
        row.previous_value = previous_value
        row.previous_date = previous_date
    if new_rows:
        # On the connection, not through the session's ORM bulk insert: one plain
        # executemany with every column given, half the time for 500 apartments.
        connection = await session.connection()
        await connection.execute(insert(DraftSlot), new_rows)
    await session.commit()
    return await progress(session, draft.id)


async def _draft(
    session: AsyncSession, account_id: str, building_id: str, period: str
) -> Draft | None:
    return (
        await session.execute(
            select(Draft).where(
                Draft.account_id == account_id,
                Draft.building_id == building_id,
                Draft.period == period,
            )
        )
    ).scalar_one_or_none()


async def _move_slots(
    session: AsyncSession, rows: Iterable[DraftSlot], positions: dict[str, int]
) -> None:
    """Put the draft's rows at their new positions (flushed when they come to the commit).

    A position is unique in a draft, checked at each row's UPDATE: the rows that move
    leave their places first (for a place below zero, each its own), so that no row is
    ever moved onto a place another one has not left yet.
    """
    moving = [
        row for row in rows if row.meter_id in positions and row.position != positions[row.meter_id]
    ]
    if not moving:
        return
    for row in moving:
        row.position = -1 - positions[row.meter_id]
    await session.flush()
    for row in moving:
        row.position = positions[row.meter_id]


async def latest_draft(session: AsyncSession, account_id: str, building_id: str) -> int | None:
    """The building's most recent draft (to go on entering while billing is down)."""
    return (
        await session.execute(
            select(Draft.id)
            .where(Draft.account_id == account_id, Draft.building_id == building_id)
            .order_by(Draft.period.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def progress(session: AsyncSession, draft_id: int) -> Progress:
    """The draft and the counts of its slots by status, in one grouped query."""
    rows = (await session.execute(_PROGRESS, {"draft_id": draft_id})).all()
    if not rows:
        msg = f"draft {draft_id} does not exist"
        raise LookupError(msg)
    counts: dict[str, int] = {}
    warnings = 0
    for row in rows:
        status, count, warned = row[4], int(row[5]), int(row[6])
        if status is None:
            continue
        counts[str(status)] = count
        if status != SlotStatus.EMPTY:
            warnings += warned
    filled = sum(
        counts.get(status, 0)
        for status in (SlotStatus.FILLED, SlotStatus.SENDING, SlotStatus.ACCEPTED)
    )
    building_id, address, period, apartments = rows[0][:4]
    return Progress(
        draft_id=draft_id,
        building_id=building_id,
        address=address,
        period=period,
        apartments=apartments,
        total=sum(counts.values()),
        filled=filled,
        skipped=counts.get(SlotStatus.SKIPPED, 0),
        empty=counts.get(SlotStatus.EMPTY, 0),
        rejected=counts.get(SlotStatus.REJECTED, 0),
        to_send=counts.get(SlotStatus.FILLED, 0),
        warnings=warnings,
    )


async def slot_at(session: AsyncSession, draft_id: int, position: int) -> Slot | None:
    """The slot at `position` in walking order, or None past the end."""
    row = (await session.execute(_SLOT_AT, {"draft_id": draft_id, "position": position})).first()
    return _slot(row) if row else None


async def card_slot(
    session: AsyncSession, draft_id: int, position: int, meter_id: str | None
) -> Slot:
    """The slot of the card on screen: `meter_id`'s, wherever the walk has moved it
    since (SlotGone once billing dropped it); without a meter, the slot at `position`
    (SlotGone past the end)."""
    return _slot(await _slot_row(session, draft_id, position, meter_id))


async def next_open(session: AsyncSession, draft_id: int, after: int = -1) -> Slot | None:
    """The first slot after `after` that still needs a value (empty or rejected)."""
    row = (await session.execute(_NEXT_OPEN, {"draft_id": draft_id, "after": after})).first()
    return _slot(row) if row else None


async def warned_slots(session: AsyncSession, draft_id: int) -> list[Slot]:
    """Slots whose value was kept after a below-previous or big-jump warning."""
    rows = await session.execute(
        select(SLOTS)
        .where(
            SLOTS.c.draft_id == draft_id,
            SLOTS.c.warning.is_not(None),
            SLOTS.c.status != SlotStatus.EMPTY,
        )
        .order_by(SLOTS.c.position)
    )
    return [_slot(row) for row in rows]


async def apartment_position(session: AsyncSession, draft_id: int, query: str) -> int | None:
    """Where the apartment the inspector typed starts, or None."""
    rows = await session.execute(
        select(DraftSlot.position, DraftSlot.apartment)
        .where(DraftSlot.draft_id == draft_id)
        .order_by(DraftSlot.position)
    )
    positions, apartments = [], []
    for position, apartment in rows.all():
        positions.append(position)
        apartments.append(apartment)
    index = find_apartment(query, apartments)
    return positions[index] if index is not None else None


async def enter_value(
    session: AsyncSession,
    *,
    draft_id: int,
    position: int,
    meter_id: str | None = None,
    text: str,
    jump_limit: int,
    confirmed_value: str | None = None,
    user_id: int,
    message_id: int | None,
    now: datetime,
) -> ValueOutcome:
    """Validate what was typed for a slot and keep it (committed) if it may be kept.

    A value below the previous reading or far above it is kept only when the
    inspector already confirmed exactly that value (`confirmed_value`). With
    `meter_id` (the card's meter) the value goes to that meter even if the list
    changed under the card; SlotGone if billing dropped it.
    """
    row = await _slot_row(session, draft_id, position, meter_id)
    slot = _slot(row)
    if slot.status == SlotStatus.SENDING:
        return NotEditable(slot)
    parsed = parse_reading(text, slot.digits, slot.fraction_digits)
    if isinstance(parsed, ValueProblem):
        return Refused(slot, parsed)
    warning = check_plausibility(parsed.value, slot.previous_value, jump_limit)
    if warning is not None and confirmed_value != parsed.value:
        return NeedsConfirmation(slot, parsed.value, warning)
    entered = _Entered(user_id=user_id, at=now, message_id=message_id)
    return Saved(
        await _store(
            session,
            row.id,
            slot,
            entered,
            status=SlotStatus.FILLED,
            value=parsed.value,
            warning=warning.kind.value if warning else None,
            skip_reason=None,
        )
    )


async def skip_slot(
    session: AsyncSession,
    *,
    draft_id: int,
    position: int,
    meter_id: str | None = None,
    reason: SkipReason,
    user_id: int,
    now: datetime,
) -> Slot | None:
    """Mark a slot as skipped with a reason; None if it is being sent right now.

    `meter_id` as for enter_value.
    """
    row = await _slot_row(session, draft_id, position, meter_id)
    slot = _slot(row)
    if slot.status == SlotStatus.SENDING:
        return None
    entered = _Entered(user_id=user_id, at=now, message_id=None)
    return await _store(
        session,
        row.id,
        slot,
        entered,
        status=SlotStatus.SKIPPED,
        value=None,
        warning=None,
        skip_reason=reason.value,
    )


async def slot_by_message(session: AsyncSession, user_id: int, message_id: int) -> Slot | None:
    """The slot a user's message filled (to apply an edit of that message)."""
    row = (
        await session.execute(
            select(SLOTS)
            .where(SLOTS.c.entered_by == user_id, SLOTS.c.source_message_id == message_id)
            .order_by(SLOTS.c.id.desc())
            .limit(1)
        )
    ).first()
    return _slot(row) if row else None


async def _slot_row(
    session: AsyncSession, draft_id: int, position: int, meter_id: str | None
) -> Any:
    """The slot at `position`; given `meter_id`, that meter's slot wherever it is now.

    A card shows one meter. When billing's list changes while the card is on screen
    (another inspector re-opens the building), the slots are renumbered, and what is
    typed on the card is still for the meter it shows.
    """
    row = (await session.execute(_SLOT_AT, {"draft_id": draft_id, "position": position})).first()
    if meter_id is not None and (row is None or row.meter_id != meter_id):
        row = (
            await session.execute(_SLOT_OF_METER, {"draft_id": draft_id, "meter_id": meter_id})
        ).first()
    if row is None:
        msg = f"no slot {position} ({meter_id}) in draft {draft_id}"
        raise SlotGone(msg)
    return row


@dataclass(frozen=True, slots=True)
class _Entered:
    """Who put a value (or a skip) into a slot, when, and by which message."""

    user_id: int
    at: datetime
    message_id: int | None


async def _store(
    session: AsyncSession,
    slot_id: int,
    slot: Slot,
    entered: _Entered,
    *,
    status: SlotStatus,
    value: str | None,
    warning: str | None,
    skip_reason: str | None,
) -> Slot:
    """Write the slot's new content (any earlier rejection cleared) and commit."""
    await session.execute(
        _STORE,
        {
            "slot_id": slot_id,
            "status": status,
            "value": value,
            "warning": warning,
            "skip_reason": skip_reason,
            "entered_by": entered.user_id,
            "entered_at": entered.at,
            "source_message_id": entered.message_id,
        },
    )
    await session.commit()
    return replace(
        slot,
        status=status,
        value=value,
        warning=warning,
        skip_reason=skip_reason,
        rejection_message=None,
    )


async def reset_sending(session: AsyncSession, submission_id: int) -> None:
    """Give a failed batch's slots back to the draft (not committed)."""
    await session.execute(
        update(DraftSlot)
        .where(DraftSlot.submission_id == submission_id, DraftSlot.status == SlotStatus.SENDING)
        .values(status=SlotStatus.FILLED, submission_id=None)
    )
