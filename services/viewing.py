"""«Просмотр показаний приборов»: what billing accepted for a building, by period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from billing_client.base import Billing, BillingAuth
from services.apartments import apartment_sort_key

VIEW_PAGE_SIZE = 20


@dataclass(frozen=True, slots=True)
class AcceptedLine:
    apartment: str
    serial_number: str
    tariff: str | None
    value: str
    taken: date


@dataclass(frozen=True, slots=True)
class AcceptedPage:
    period: str
    lines: list[AcceptedLine]
    page: int
    pages: int
    total: int
    current_period: str  # billing's period now: there is nothing later to look at

    @property
    def later_period(self) -> str | None:
        """The period after this one, unless this one is the current period."""
        return shift_period(self.period, 1) if self.period < self.current_period else None


def shift_period(period: str, months: int) -> str:
    """'2026-11' shifted by `months` (negative for earlier)."""
    year, month = (int(part) for part in period.split("-"))
    index = year * 12 + (month - 1) + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


async def accepted_page(
    billing: Billing,
    auth: BillingAuth,
    building_id: str,
    period: str | None,
    page: int,
) -> AcceptedPage:
    """One page of accepted readings, in walking order, with apartment and serial."""
    meters = await billing.meters(auth, building_id)
    accepted = await billing.readings(auth, building_id, period)
    by_id = {meter.id: meter for meter in meters.meters}
    lines = []
    for reading in accepted.readings:
        meter = by_id.get(reading.meter_id)
        lines.append(
            AcceptedLine(
                apartment=meter.apartment if meter else "?",
                serial_number=meter.serial_number if meter else reading.meter_id,
                tariff=meter.tariff if meter else None,
                value=reading.value,
                taken=reading.taken_at.date(),
            )
        )
    lines.sort(key=lambda line: (apartment_sort_key(line.apartment), line.serial_number))
    pages = max(1, -(-len(lines) // VIEW_PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    start = page * VIEW_PAGE_SIZE
    return AcceptedPage(
        accepted.period,
        lines[start : start + VIEW_PAGE_SIZE],
        page,
        pages,
        len(lines),
        current_period=meters.period,
    )
