"""The account's buildings: fetched from billing once, searched in memory."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from billing_client.base import Billing, BillingAuth
from billing_client.errors import BillingUnavailable
from billing_client.models import Building
from services.search import BuildingIndex, Match

PAGE_SIZE = 8
CACHE_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class BuildingPage:
    """One page of the building list."""

    buildings: list[Building]
    page: int
    pages: int


class _Listed(NamedTuple):
    """What the directory keeps of a building.

    A tuple takes a tenth of the memory of a Building model (10,000 buildings: ~1 MB
    instead of ~9 MB); Buildings are made for the few that a page, a search or a
    lookup returns.
    """

    id: str
    city: str
    street: str
    house: str
    address: str

    def building(self) -> Building:
        return Building(
            id=self.id, city=self.city, street=self.street, house=self.house, address=self.address
        )


# ASCII's record and unit separators: between buildings, and between their fields.
_RECORD = "\x1e"
_UNIT = "\x1f"
_RECORDS = re.compile(f"[^{_RECORD}]+")


def _packed(buildings: list[Building]) -> str:
    """Every building as one record of one string, for _unpacked()."""
    packed = _RECORD.join(
        f"{b.id}{_UNIT}{b.city}{_UNIT}{b.street}{_UNIT}{b.house}{_UNIT}{b.address}"
        for b in buildings
    )
    if packed.count(_UNIT) + packed.count(_RECORD) == 5 * len(buildings) - 1:
        return packed
    # A separator inside billing's text (control characters, never in a real
    # address): blanked, so that each record still has its five fields.
    return _RECORD.join(
        _UNIT.join(
            text.replace(_RECORD, " ").replace(_UNIT, " ")
            for text in (b.id, b.city, b.street, b.house, b.address)
        )
        for b in buildings
    )


def _unpacked(packed: str) -> list[_Listed]:
    """The buildings of _packed(), made one at a time, in new strings.

    A company's buildings share a few cities, streets and house numbers: one string
    for each.
    """
    shared: dict[str, str] = {}
    listed = []
    for record in _RECORDS.finditer(packed):
        building_id, city, street, house, address = record[0].split(_UNIT)
        listed.append(
            _Listed(
                building_id,
                shared.setdefault(city, city),
                shared.setdefault(street, street),
                shared.setdefault(house, house),
                address,
            )
        )
    return listed


class BuildingDirectory:
    """Per-account cache of the building list and its search index.

    A company's list changes rarely; fetching thousands of buildings on every
    keystroke would make search slow and load billing for nothing.
    """

    def __init__(
        self,
        billing: Billing,
        *,
        ttl: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._billing = billing
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, BuildingIndex[_Listed], dict[str, _Listed]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def _entry(
        self, account_id: str, auth: BillingAuth
    ) -> tuple[BuildingIndex[_Listed], dict[str, _Listed]]:
        cached = self._cache.get(account_id)
        if cached is not None and self._clock() - cached[0] < self._ttl:
            return cached[1], cached[2]
        lock = self._locks.setdefault(account_id, asyncio.Lock())
        async with lock:
            cached = self._cache.get(account_id)
            if cached is not None and self._clock() - cached[0] < self._ttl:
                return cached[1], cached[2]
            try:
                listing = await self._billing.buildings(auth)
            except BillingUnavailable:
                if cached is None:
                    raise
                # Billing is down: an old list still lets the inspector find a
                # building and go on entering readings into its saved draft.
                return cached[1], cached[2]
            # Billing's answer (10,000 buildings: ~17 MB of models) is freed before
            # the directory's own strings are made: made among it, or all at once,
            # they kept ~6 MB of freed memory from going back to the system. One
            # string carries them across.
            packed = _packed(listing.buildings)
            del listing
            listed = _unpacked(packed)
            del packed
            index = BuildingIndex(listed)
            by_id = {building.id: building for building in listed}
            self._cache[account_id] = (self._clock(), index, by_id)
            return index, by_id

    async def page(self, account_id: str, auth: BillingAuth, page: int) -> BuildingPage:
        """Page `page` (0-based, clamped) of the buildings in a stable order."""
        index, _ = await self._entry(account_id, auth)
        ordered = index.in_order()
        pages = max(1, -(-len(ordered) // PAGE_SIZE))
        page = min(max(page, 0), pages - 1)
        start = page * PAGE_SIZE
        shown = [listed.building() for listed in ordered[start : start + PAGE_SIZE]]
        return BuildingPage(shown, page, pages)

    async def search(self, account_id: str, auth: BillingAuth, query: str) -> list[Building]:
        """The best matches for a typed street and/or house, best first."""
        index, _ = await self._entry(account_id, auth)
        matches: list[Match[_Listed]] = index.search(query, limit=PAGE_SIZE)
        return [match.building.building() for match in matches]

    async def get(self, account_id: str, auth: BillingAuth, building_id: str) -> Building | None:
        """One building of the account by id, or None if the account does not serve it."""
        _, by_id = await self._entry(account_id, auth)
        listed = by_id.get(building_id)
        return listed.building() if listed is not None else None

    def forget(self, account_id: str) -> None:
        """Drop the cached list (e.g. after an import changed it)."""
        self._cache.pop(account_id, None)
