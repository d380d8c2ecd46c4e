"""The account's buildings: fetched from billing once, searched in memory."""

from __future__ import annotations

import asyncio
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


# ASCII's unit separator, between the fields of the packed list of buildings.
_SEPARATOR = "\x1f"


def _packed(buildings: list[Building]) -> str:
    """Every field of every building in one string, for _unpacked()."""
    return _SEPARATOR.join(
        text.replace(_SEPARATOR, " ")
        for b in buildings
        for text in (b.id, b.city, b.street, b.house, b.address)
    )


def _unpacked(packed: str) -> list[_Listed]:
    """The buildings of _packed(), in new strings; cities and streets shared."""
    fields = packed.split(_SEPARATOR) if packed else []
    # A company's buildings share a few cities and streets: one string for each.
    shared: dict[str, str] = {}
    return [
        _Listed(
            fields[i],
            shared.setdefault(fields[i + 1], fields[i + 1]),
            shared.setdefault(fields[i + 2], fields[i + 2]),
            fields[i + 3],
            fields[i + 4],
        )
        for i in range(0, len(fields), 5)
    ]


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
            # the directory's own strings are made: made among it, they kept ~4 MB of
            # its freed memory from going back to the system. One string carries them.
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
