"""Fixtures of the billing tests: a fake clock, a small known account, both backends."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from billing_client.auth import TokenAuthBilling
from billing_client.base import BillingAuth
from billing_client.embedded import (
    AcceptanceWindow,
    EmbeddedBilling,
    downgrade_billing_database,
)
from billing_client.http import HttpBilling
from billing_client.models import Meter
from billing_client.server import Faults, create_app
from billing_client.template import TemplateRow
from tests.harness.databases import ensure_database, per_worker
from tests.harness.hashing import fast_hasher

TZ = ZoneInfo("Asia/Novosibirsk")
LOGIN = "uk-sibir"
PASSWORD = "correct horse battery"
OTHER_LOGIN = "uk-other"
OTHER_PASSWORD = "another long password"
CITY = "Новосибирск"
# Inside the acceptance window configured below (23rd to 25th).
START = datetime(2026, 11, 24, 10, 0, tzinfo=TZ)
WINDOW = AcceptanceWindow(23, 25)


class FakeClock:
    """billing's clock, moved by hand."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def row(
    street: str,
    house: str,
    apartment: str,
    serial: str,
    digits: int = 5,
    fraction_digits: int = 0,
    tariff: str | None = None,
    previous: str | None = None,
    previous_date: date | None = None,
) -> TemplateRow:
    """A template row in the test city."""
    return TemplateRow(
        city=CITY,
        street=street,
        house=house,
        apartment=apartment,
        serial_number=serial,
        digits=digits,
        fraction_digits=fraction_digits,
        tariff=tariff,
        previous_value=previous,
        previous_date=previous_date if previous is not None else None,
    )


PREVIOUS_DAY = date(2026, 10, 22)
MAIN_ROWS = [
    row("Авиастроителей ул.", "0/0", "1", "123456789", 5, 0, None, "13305", PREVIOUS_DAY),
    row("Авиастроителей ул.", "0/0", "1а", "0098765", 6, 1, "день", None),
    row("Авиастроителей ул.", "0/0", "1а", "0098765", 6, 1, "ночь", "00412.5", PREVIOUS_DAY),
    row("Авиастроителей ул.", "0/0", "НП-1", "555", 8, 2, None, None),
    row("Красный пр-т", "17", "12", "000111", 5, 0, None, "00100", PREVIOUS_DAY),
]
OTHER_ROWS = [row("Гоголя ул.", "38", "5", "999", 5)]


def database_url(tmp_path: Path) -> str:
    """A fresh SQLite file, or BILLING_TEST_DATABASE_URL (e.g. a scratch PostgreSQL).

    The variable lets the same tests prove the backend on PostgreSQL; that
    database (one per pytest-xdist worker: its name gets the worker's number) is
    emptied before each test, so never point it at real data.
    """
    scratch = os.environ.get("BILLING_TEST_DATABASE_URL")
    if scratch:
        return per_worker(scratch)
    return f"sqlite+aiosqlite:///{tmp_path / 'billing.db'}"


async def empty_scratch_database(url: str) -> None:
    """Create the worker's scratch database if needed, and drop every billing table."""
    await ensure_database(url)
    await downgrade_billing_database(url, "base")


async def make_backend(
    tmp_path: Path, clock: FakeClock, *, window: AcceptanceWindow = WINDOW
) -> EmbeddedBilling:
    """An embedded billing on a fresh database with the two test accounts."""
    url = database_url(tmp_path)
    if not url.startswith("sqlite"):
        await empty_scratch_database(url)
    backend = await EmbeddedBilling.open(
        url,
        timezone=TZ,
        window=window,
        clock=clock,
        password_hasher=fast_hasher(),
    )
    await backend.add_account(
        LOGIN, "ООО «УК Сибирь»", SecretStr(PASSWORD), inn="5405000000", rows=MAIN_ROWS
    )
    await backend.add_account(
        OTHER_LOGIN, "ТСЖ «Гоголя»", SecretStr(OTHER_PASSWORD), rows=OTHER_ROWS
    )
    return backend


@dataclass
class Served:
    """The reference server on loopback, with its fault injection and HTTP clients."""

    server: TestServer
    faults: Faults
    sleeps: list[float] = field(default_factory=list)
    clients: list[HttpBilling] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("/api/v1"))

    @property
    def client(self) -> HttpBilling:
        """The default client: 5 s timeout, 2 retries, backoff recorded instead of slept."""
        return self.clients[0]

    def new_client(self, **options: Any) -> HttpBilling:
        """Another client of the same server (e.g. with a shorter timeout)."""

        async def no_wait(seconds: float) -> None:
            self.sleeps.append(seconds)

        settings: dict[str, Any] = {"retries": 2, "backoff_base": 0.05, "sleep": no_wait}
        settings.update(options)
        client = HttpBilling(self.base_url, **settings)
        self.clients.append(client)
        return client


async def serve(backend: EmbeddedBilling) -> Served:
    """Start the reference server for `backend` on 127.0.0.1 at a free port."""
    faults = Faults()
    server = TestServer(create_app(backend, faults=faults), host="127.0.0.1", port=0)
    await server.start_server()
    served = Served(server=server, faults=faults)
    served.new_client(total_timeout=5.0)
    return served


async def stop(served: Served) -> None:
    served.faults.release()
    for client in served.clients:
        await client.close()
    await served.server.close()


@dataclass
class Contract:
    """What a contract test needs, the same for both backends."""

    kind: str
    billing: TokenAuthBilling
    backend: EmbeddedBilling
    clock: FakeClock
    served: Served | None

    def auth(self, login: str = LOGIN, password: str = PASSWORD) -> BillingAuth:
        return BillingAuth(login=login, password=SecretStr(password))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def backend(tmp_path: Path, clock: FakeClock) -> AsyncIterator[EmbeddedBilling]:
    billing = await make_backend(tmp_path, clock)
    yield billing
    await billing.close()


@pytest.fixture
async def served(backend: EmbeddedBilling) -> AsyncIterator[Served]:
    running = await serve(backend)
    yield running
    await stop(running)


@pytest.fixture(params=["embedded", "http"])
async def contract(
    request: pytest.FixtureRequest, backend: EmbeddedBilling, clock: FakeClock
) -> AsyncIterator[Contract]:
    """The contract suite runs once on EmbeddedBilling, once through HTTP to the server."""
    if request.param == "embedded":
        yield Contract("embedded", backend, backend, clock, None)
        return
    running = await serve(backend)
    try:
        yield Contract("http", running.client, backend, clock, running)
    finally:
        await stop(running)


def by_place(meters: list[Meter]) -> dict[tuple[str, str | None], Meter]:
    """Meters keyed by (apartment, tariff) — how a test names a slot."""
    return {(meter.apartment, meter.tariff): meter for meter in meters}
