"""Loading an account's buildings and meters from template rows, and exporting them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import and_, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_client.embedded.models import BuildingRow, ReadingRow, SlotRow
from billing_client.template import TemplateRow

# Keeps each IN (...) list well below SQLite's and asyncpg's parameter limits.
CHUNK = 500


@dataclass(frozen=True)
class ImportReport:
    """What an import changed."""

    buildings: int
    buildings_added: int
    slots: int
    slots_added: int
    slots_updated: int
    slots_removed: int


@dataclass(frozen=True)
class PreviousReading:
    """The last accepted reading of a slot before a period."""

    value: str
    day: date


def address_of(city: str, street: str, house: str) -> str:
    """The building's one-line address, as the contract shows it."""
    return f"{city}, {street}, {house}"


async def import_rows(
    session: AsyncSession, account_id: int, rows: Sequence[TemplateRow], *, prune: bool
) -> ImportReport:
    """Add or update the account's buildings and slots from template rows.

    A building is keyed by city, street and house; a slot by apartment, serial
    number and tariff within it. Existing slots get the file's digits, fraction
    digits and (when the file has one) previous reading; their accepted readings
    stay. With `prune`, slots of the file's buildings that the file no longer
    lists are removed, with their readings. The caller owns the transaction.
    """
    buildings = {
        (row.city, row.street, row.house): row
        for row in (
            await session.scalars(select(BuildingRow).where(BuildingRow.account_id == account_id))
        ).all()
    }
    position = max((b.position for b in buildings.values()), default=0)
    added_buildings = 0
    by_building: dict[tuple[str, str, str], list[TemplateRow]] = {}
    for row in rows:
        by_building.setdefault(row.building_key, []).append(row)
    for key in by_building:
        if key not in buildings:
            position += 1
            building = BuildingRow(
                account_id=account_id,
                city=key[0],
                street=key[1],
                house=key[2],
                address=address_of(*key),
                position=position,
            )
            session.add(building)
            buildings[key] = building
            added_buildings += 1
    await session.flush()

    added = updated = removed = 0
    for key, building_rows in by_building.items():
        building = buildings[key]
        existing = {
            (slot.apartment, slot.serial_number, slot.tariff): slot
            for slot in (
                await session.scalars(select(SlotRow).where(SlotRow.building_id == building.id))
            ).all()
        }
        slot_position = max((slot.position for slot in existing.values()), default=0)
        new_slots = []
        seen = set()
        for row in building_rows:
            slot_key = (row.apartment, row.serial_number, row.tariff or "")
            seen.add(slot_key)
            slot = existing.get(slot_key)
            if slot is None:
                slot_position += 1
                new_slots.append(
                    {
                        "building_id": building.id,
                        "apartment": row.apartment,
                        "serial_number": row.serial_number,
                        "tariff": row.tariff or "",
                        "digits": row.digits,
                        "fraction_digits": row.fraction_digits,
                        "previous_value": row.previous_value,
                        "previous_date": row.previous_date,
                        "position": slot_position,
                    }
                )
                continue
            changed = (slot.digits, slot.fraction_digits) != (row.digits, row.fraction_digits)
            slot.digits, slot.fraction_digits = row.digits, row.fraction_digits
            if row.previous_value is not None and (slot.previous_value, slot.previous_date) != (
                row.previous_value,
                row.previous_date,
            ):
                slot.previous_value, slot.previous_date = row.previous_value, row.previous_date
                changed = True
            updated += changed
        if new_slots:
            await session.execute(insert(SlotRow), new_slots)
            added += len(new_slots)
        if prune:
            gone = [slot.id for slot_key, slot in existing.items() if slot_key not in seen]
            for start in range(0, len(gone), CHUNK):
                chunk = gone[start : start + CHUNK]
                await session.execute(delete(SlotRow).where(SlotRow.id.in_(chunk)))
            removed += len(gone)
    await session.flush()
    return ImportReport(
        buildings=len(by_building),
        buildings_added=added_buildings,
        slots=len(rows),
        slots_added=added,
        slots_updated=updated,
        slots_removed=removed,
    )


async def accepted_before(
    session: AsyncSession,
    period: str,
    tz: ZoneInfo,
    *,
    building_id: int | None = None,
    account_id: int | None = None,
) -> dict[int, PreviousReading]:
    """The last reading accepted before `period` of each slot of a building or account.

    Slots with none are left out; `previous_reading` weighs in the imported one.
    """
    latest = select(ReadingRow.slot_id, func.max(ReadingRow.period).label("period")).join(
        SlotRow, SlotRow.id == ReadingRow.slot_id
    )
    if building_id is not None:
        latest = latest.where(SlotRow.building_id == building_id)
    if account_id is not None:
        latest = latest.join(BuildingRow, BuildingRow.id == SlotRow.building_id).where(
            BuildingRow.account_id == account_id
        )
    latest_q = latest.where(ReadingRow.period < period).group_by(ReadingRow.slot_id).subquery()
    accepted = select(ReadingRow.slot_id, ReadingRow.value, ReadingRow.taken_at).join(
        latest_q,
        and_(ReadingRow.slot_id == latest_q.c.slot_id, ReadingRow.period == latest_q.c.period),
    )
    return {
        slot_id: PreviousReading(value, _local_day(taken_at, tz))
        for slot_id, value, taken_at in (await session.execute(accepted)).all()
    }


def previous_reading(
    accepted: PreviousReading | None, imported_value: str | None, imported_date: date | None
) -> PreviousReading | None:
    """A slot's previous reading: the last accepted one, or the imported one.

    The imported reading (the slot's previous_value and previous_date) is used when
    nothing was accepted, or when it is dated later: a re-import brought a fresher
    value from the company's own records.
    """
    if imported_value is None or imported_date is None:
        return accepted
    if accepted is not None and imported_date <= accepted.day:
        return accepted
    return PreviousReading(imported_value, imported_date)


def _local_day(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


async def export_rows(
    session: AsyncSession, account_id: int, period: str, tz: ZoneInfo
) -> list[TemplateRow]:
    """Every slot of the account, in billing's order, with the readings of `period`."""
    accepted = await accepted_before(session, period, tz, account_id=account_id)
    current = {
        slot_id: (value, _local_day(taken_at, tz))
        for slot_id, value, taken_at in (
            await session.execute(
                select(ReadingRow.slot_id, ReadingRow.value, ReadingRow.taken_at)
                .join(SlotRow, SlotRow.id == ReadingRow.slot_id)
                .join(BuildingRow, BuildingRow.id == SlotRow.building_id)
                .where(BuildingRow.account_id == account_id, ReadingRow.period == period)
            )
        ).all()
    }
    rows = []
    query = (
        select(SlotRow, BuildingRow.city, BuildingRow.street, BuildingRow.house)
        .join(BuildingRow, BuildingRow.id == SlotRow.building_id)
        .where(BuildingRow.account_id == account_id)
        .order_by(BuildingRow.position, BuildingRow.id, SlotRow.position, SlotRow.id)
    )
    for slot, city, street, house in (await session.execute(query)).all():
        before = previous_reading(accepted.get(slot.id), slot.previous_value, slot.previous_date)
        value, day = current.get(slot.id, (None, None))
        rows.append(
            TemplateRow(
                city=city,
                street=street,
                house=house,
                apartment=slot.apartment,
                serial_number=slot.serial_number,
                digits=slot.digits,
                fraction_digits=slot.fraction_digits,
                tariff=slot.tariff or None,
                previous_value=before.value if before else None,
                previous_date=before.day if before else None,
                value=value,
                value_date=day,
            )
        )
    return rows
