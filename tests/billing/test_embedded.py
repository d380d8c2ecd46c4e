"""The embedded backend beyond the contract: import/export, accounts, demo, rules, storage."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import event, text

from billing_client import describe_billing, open_billing
from billing_client.base import BillingAuth
from billing_client.embedded import AcceptanceWindow, AdminError, EmbeddedBilling
from billing_client.embedded.catalog import PreviousReading, previous_reading
from billing_client.embedded.demo import DEMO_BUILDINGS, demo_rows
from billing_client.embedded.rules import value_problem
from billing_client.http import HttpBilling
from billing_client.models import ReadingIn
from billing_client.template import read_template, write_template
from settings import BillingSettings
from tests.billing.conftest import (
    CITY,
    LOGIN,
    MAIN_ROWS,
    PASSWORD,
    TZ,
    by_place,
    database_url,
    row,
)

TAKEN = datetime(2026, 11, 24, 9, 41, tzinfo=TZ)


def auth() -> BillingAuth:
    return BillingAuth(login=LOGIN, password=SecretStr(PASSWORD))


# -- import, submit, export --------------------------------------------------------------


async def test_import_submit_export_gives_back_the_slots_with_the_values(
    backend: EmbeddedBilling,
) -> None:
    template = write_template(
        [
            row("Титова ул.", "7", "1", "0001", 5, 0, None, "00100", date(2026, 10, 20)),
            row("Титова ул.", "7", "2", "0002", 6, 1, "день", "000200.5", date(2026, 10, 20)),
            row("Титова ул.", "7", "2", "0002", 6, 1, "ночь", "000100.0", date(2026, 10, 20)),
            row("Титова ул.", "7", "НП-1", "0003", 7),
        ]
    )
    await backend.add_account("roundtrip", "ТСЖ «Титова 7»", SecretStr("roundtrip-password"))
    imported = read_template(template, "titova.xlsx", CITY)
    await backend.import_rows("roundtrip", imported)
    who = BillingAuth(login="roundtrip", password=SecretStr("roundtrip-password"))
    building = (await backend.buildings(who)).buildings[0]
    meters = (await backend.meters(who, building.id)).meters
    values = {meters[0].id: "00150", meters[1].id: "000250.7", meters[3].id: "0000010"}
    result = await backend.submit(
        who,
        building.id,
        [ReadingIn(meter_id=k, value=v, taken_at=TAKEN) for k, v in values.items()],
        "roundtrip-key",
    )
    assert result.rejected == []

    exported = read_template(write_template(await backend.export_rows("roundtrip")), "e.xlsx", CITY)

    assert [r.slot_key for r in exported] == [r.slot_key for r in imported]
    assert [(r.digits, r.fraction_digits) for r in exported] == [
        (r.digits, r.fraction_digits) for r in imported
    ]
    assert [(r.previous_value, r.previous_date) for r in exported] == [
        (r.previous_value, r.previous_date) for r in imported
    ]
    assert [(r.value, r.value_date) for r in exported] == [
        ("00150", TAKEN.date()),
        ("000250.7", TAKEN.date()),
        (None, None),
        ("0000010", TAKEN.date()),
    ]
    # The export is itself a valid import: loading it again changes nothing.
    report = await backend.import_rows("roundtrip", exported)
    assert (report.buildings_added, report.slots_added, report.slots_updated) == (0, 0, 0)


async def test_reimport_updates_slots_keeps_readings_and_prune_removes(
    backend: EmbeddedBilling,
) -> None:
    who = auth()
    building_id = (await backend.buildings(who)).buildings[0].id
    single = by_place((await backend.meters(who, building_id)).meters)[("1", None)]
    await backend.submit(
        who, building_id, [ReadingIn(meter_id=single.id, value="13420", taken_at=TAKEN)], "k"
    )
    changed = [
        row("Авиастроителей ул.", "0/0", "1", "123456789", 6, 0, None, "13305", date(2026, 10, 22)),
        row("Авиастроителей ул.", "0/0", "2", "4242", 5),
    ]

    report = await backend.import_rows(LOGIN, changed)

    assert (report.buildings_added, report.slots_added, report.slots_updated) == (0, 1, 1)
    meters = by_place((await backend.meters(who, building_id)).meters)
    assert meters[("1", None)].id == single.id and meters[("1", None)].digits == 6
    assert ("1а", "день") in meters  # not in the file, kept without --prune
    assert [r.value for r in (await backend.readings(who, building_id)).readings] == ["13420"]

    pruned = await backend.import_rows(LOGIN, changed, prune=True)

    assert pruned.slots_removed == 3
    meters = by_place((await backend.meters(who, building_id)).meters)
    assert sorted(meters) == [("1", None), ("2", None)]
    assert len((await backend.buildings(who)).buildings) == 2  # other buildings untouched


def test_the_previous_reading_is_the_later_of_the_accepted_and_the_imported() -> None:
    accepted = PreviousReading("13420", date(2026, 11, 24))

    assert previous_reading(accepted, None, None) == accepted
    assert previous_reading(accepted, "13305", date(2026, 10, 22)) == accepted
    assert previous_reading(accepted, "13305", date(2026, 11, 24)) == accepted
    # A re-import brought a fresher value from the company's own records.
    fresher = previous_reading(accepted, "13500", date(2026, 11, 30))
    assert fresher == PreviousReading("13500", date(2026, 11, 30))
    assert previous_reading(None, "13305", date(2026, 10, 22)) == PreviousReading(
        "13305", date(2026, 10, 22)
    )
    assert previous_reading(None, "13305", None) is None


async def test_importing_into_an_unknown_account_is_refused(backend: EmbeddedBilling) -> None:
    with pytest.raises(AdminError, match="nobody"):
        await backend.import_rows("nobody", MAIN_ROWS)


# -- accounts ------------------------------------------------------------------------------


async def test_accounts_are_listed_and_removed_with_everything(backend: EmbeddedBilling) -> None:
    listed = {a.login: a for a in await backend.list_accounts()}
    assert (listed[LOGIN].buildings, listed[LOGIN].slots, listed[LOGIN].inn) == (2, 5, "5405000000")

    assert await backend.remove_account(" UK-SIBIR ")

    assert LOGIN not in {a.login for a in await backend.list_accounts()}
    assert not await backend.remove_account(LOGIN)
    async with backend._engine.connect() as connection:  # nothing is left behind
        for table in ("billing_buildings", "billing_slots", "billing_tokens"):
            count = (await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar()
            assert count == 1 if table != "billing_tokens" else count == 0


@pytest.mark.parametrize(
    ("login", "name", "inn", "message"),
    [
        ("uk sibir", "УК", None, "логин «uk sibir» не годится"),
        ("-uk", "УК", None, "логин «-uk» не годится"),
        ("uk-new", "   ", None, "название организации"),
        ("uk-new", "УК", "12345", "ИНН"),
        (LOGIN, "УК", None, "уже есть"),
    ],
)
async def test_bad_accounts_are_refused(
    backend: EmbeddedBilling, login: str, name: str, inn: str | None, message: str
) -> None:
    with pytest.raises(AdminError, match=message):
        await backend.add_account(login, name, SecretStr("some long password"), inn=inn)


async def test_only_a_hash_of_the_password_is_stored(backend: EmbeddedBilling) -> None:
    async with backend._engine.connect() as connection:
        stored = (
            await connection.execute(
                text("SELECT password_hash FROM billing_accounts WHERE login = :l"), {"l": LOGIN}
            )
        ).scalar()

    assert isinstance(stored, str) and stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_failures_of_unknown_logins_are_throttled_too(backend: EmbeddedBilling) -> None:
    from billing_client.errors import InvalidCredentials, TooManyAttempts

    for _ in range(10):
        with pytest.raises(InvalidCredentials):
            await backend.login("ghost", SecretStr("x"))
    with pytest.raises(TooManyAttempts):
        await backend.login("ghost", SecretStr("x"))


async def test_a_successful_login_clears_earlier_failures(backend: EmbeddedBilling) -> None:
    from billing_client.errors import InvalidCredentials

    for _ in range(9):
        with pytest.raises(InvalidCredentials):
            await backend.login(LOGIN, SecretStr("x"))
    await backend.login(LOGIN, SecretStr(PASSWORD))
    for _ in range(9):
        with pytest.raises(InvalidCredentials):
            await backend.login(LOGIN, SecretStr("x"))

    assert (await backend.login(LOGIN, SecretStr(PASSWORD))).token


async def test_concurrent_twins_of_one_submission_store_it_once(backend: EmbeddedBilling) -> None:
    who = auth()
    building_id = (await backend.buildings(who)).buildings[0].id
    single = by_place((await backend.meters(who, building_id)).meters)[("1", None)]
    batch = [ReadingIn(meter_id=single.id, value="13420", taken_at=TAKEN)]

    results = await asyncio.gather(
        *(backend.submit(who, building_id, batch, "twin-key") for _ in range(5))
    )

    assert len({r.submission_id for r in results}) == 1
    assert await backend.submission_count() == 1


# -- rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "day", "is_open"),
    [
        (AcceptanceWindow(), 1, True),
        (AcceptanceWindow(23, 25), 22, False),
        (AcceptanceWindow(23, 25), 23, True),
        (AcceptanceWindow(23, 25), 25, True),
        (AcceptanceWindow(23, 25), 26, False),
        (AcceptanceWindow(25, 3), 28, True),  # wraps over the month's end
        (AcceptanceWindow(25, 3), 2, True),
        (AcceptanceWindow(25, 3), 10, False),
        (AcceptanceWindow(20, None), 30, True),
        (AcceptanceWindow(None, 5), 6, False),
    ],
)
def test_the_acceptance_window(window: AcceptanceWindow, day: int, is_open: bool) -> None:
    assert window.is_open(datetime(2026, 11, day, 12, tzinfo=TZ), TZ) is is_open


def test_the_window_is_judged_in_billings_time_zone() -> None:
    # 22nd 20:00 UTC is already the 23rd 03:00 in Novosibirsk.
    moment = datetime.fromisoformat("2026-11-22T20:00:00+00:00")

    assert AcceptanceWindow(23, 25).is_open(moment, TZ)


@pytest.mark.parametrize(
    ("value", "digits", "fraction", "problem"),
    [
        ("00412", 5, 0, None),
        ("412", 5, 0, None),
        ("004120", 5, 0, "too_many_digits"),
        ("12.5", 5, 1, None),
        ("12.55", 5, 1, "too_many_digits"),
        ("12.5", 5, 0, "too_many_digits"),
        ("12,5", 5, 1, "invalid_value"),
        ("-1", 5, 0, "invalid_value"),
        ("", 5, 0, "invalid_value"),
        ("١٢", 5, 0, "invalid_value"),  # Arabic-Indic digits are not ASCII
        ("12.", 5, 1, "invalid_value"),
        (412, 5, 0, "invalid_value"),  # a JSON number
    ],
)
def test_value_rules(value: object, digits: int, fraction: int, problem: str | None) -> None:
    assert value_problem(value, digits, fraction) == problem


# -- the demo and the factory ------------------------------------------------------------------


def settings_for(tmp_path: Path, **overrides: Any) -> BillingSettings:
    values: dict[str, Any] = {
        "BILLING_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'b.db'}",
        "BILLING_URL": None,
    }
    values.update(overrides)
    return BillingSettings(_env_file=None, **values)


async def test_the_demo_is_loaded_quickly_into_an_empty_billing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    started = time.monotonic()
    billing = await open_billing(settings_for(tmp_path))
    elapsed = time.monotonic() - started
    try:
        who = BillingAuth(login="demo", password=SecretStr("demo"))
        buildings = (await billing.buildings(who)).buildings
        slots = [m for b in buildings for m in (await billing.meters(who, b.id)).meters]
    finally:
        await billing.close()

    assert elapsed < 2.0
    assert len(buildings) == 10
    assert {b.city for b in buildings} == {"Новосибирск"}
    assert {b.street for b in buildings} >= {"Авиастроителей ул.", "Красный пр-т"}
    assert 2000 <= len(slots) <= 5000
    announcements = [r for r in caplog.records if "demo" in r.getMessage()]
    assert len(announcements) == 1 and announcements[0].levelno == logging.INFO


async def test_the_demo_data_is_realistic_and_deterministic() -> None:
    rows = demo_rows(date(2026, 11, 24))

    assert rows == demo_rows(date(2026, 11, 24))
    apartments: dict[tuple[str, str], set[str]] = {}
    zones: dict[tuple[str, str, str, str], list[str | None]] = {}
    for r in rows:
        apartments.setdefault((r.street, r.house), set()).add(r.apartment)
        zones.setdefault((r.street, r.house, r.apartment, r.serial_number), []).append(r.tariff)
    assert len(apartments) == len(DEMO_BUILDINGS) == 10
    assert all(20 <= len(names) <= 320 for names in apartments.values())
    names = set().union(*apartments.values())
    assert any(n.startswith("НП-") for n in names)
    assert any(n[-1] == "а" and n[:-1].isdigit() for n in names)
    kinds = Counter(tuple(z) for z in zones.values())
    assert set(kinds) == {(None,), ("день", "ночь"), ("пик", "полупик", "ночь")}
    assert {r.digits for r in rows} <= {5, 6, 7, 8} and {5, 8} <= {r.digits for r in rows}
    assert {1, 2} <= {r.fraction_digits for r in rows}
    assert any(r.previous_value is None for r in rows)
    assert all(
        r.previous_date is not None and r.previous_date.month == 10
        for r in rows
        if r.previous_value is not None
    )
    # Every previous value fits its meter, or billing would reject every first reading.
    assert all(
        value_problem(r.previous_value, r.digits, r.fraction_digits) is None
        for r in rows
        if r.previous_value is not None
    )


async def test_no_demo_when_accounts_exist_or_it_is_turned_off(tmp_path: Path) -> None:
    off = await open_billing(settings_for(tmp_path, BILLING_DEMO=False))
    assert isinstance(off, EmbeddedBilling)
    assert not await off.has_accounts()
    await off.add_account("uk-own", "ООО «Своя УК»", SecretStr("own password"))
    await off.close()

    on = await open_billing(settings_for(tmp_path, BILLING_DEMO=True))
    assert isinstance(on, EmbeddedBilling)
    try:
        assert [a.login for a in await on.list_accounts()] == ["uk-own"]
    finally:
        await on.close()


async def test_a_billing_url_opens_the_http_client(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path,
        BILLING_URL="https://billing.example/api/v1/",
        BILLING_TIMEOUT=7,
        BILLING_RETRIES=1,
    )

    billing = await open_billing(settings)
    try:
        assert isinstance(billing, HttpBilling)
        assert billing._base_url == "https://billing.example/api/v1"
        assert billing._total_timeout == 7 and billing._retries == 1
    finally:
        await billing.close()
    assert not (tmp_path / "b.db").exists()  # the embedded database is not touched


@pytest.mark.parametrize(
    ("url", "database", "shown"),
    [
        (None, "sqlite+aiosqlite:///data/billing.db", "embedded (sqlite)"),
        (None, "postgresql+asyncpg://bot:s3cret@db/billing", "embedded (postgresql)"),
        ("https://billing.example/api/v1", None, "https://billing.example/api/v1"),
        (
            "https://user:s3cret@billing.example:8443/api/v1?api_key=s3cret#x",
            None,
            "https://billing.example:8443/api/v1",
        ),
    ],
)
def test_describe_billing_shows_no_secrets(
    tmp_path: Path, url: str | None, database: str | None, shown: str
) -> None:
    overrides: dict[str, Any] = {"BILLING_URL": url}
    if database is not None:
        overrides["BILLING_DATABASE_URL"] = database

    assert describe_billing(settings_for(tmp_path, **overrides)) == shown


# -- storage --------------------------------------------------------------------------------------


sqlite_only = pytest.mark.skipif(
    not database_url(Path("x")).startswith("sqlite"), reason="checks SQLite's own settings"
)


@sqlite_only
async def test_sqlite_runs_with_wal_foreign_keys_and_full_sync(backend: EmbeddedBilling) -> None:
    async with backend._engine.connect() as connection:
        pragmas = {
            name: (await connection.execute(text(f"PRAGMA {name}"))).scalar()
            for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
        }

    assert pragmas == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "synchronous": 2,
        "busy_timeout": 10000,
    }


@pytest.fixture
def statements(backend: EmbeddedBilling) -> Iterator[list[tuple[str, Any]]]:
    """Every SELECT the backend sends while the test runs."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(backend._engine.sync_engine, "before_cursor_execute", record)
    yield seen
    event.remove(backend._engine.sync_engine, "before_cursor_execute", record)


@sqlite_only
async def test_the_hot_queries_use_indexes_not_table_scans(
    backend: EmbeddedBilling, statements: list[tuple[str, Any]]
) -> None:
    """An account with 10,000 buildings and 1,000,000 slots must stay fast: no full scans."""
    who = auth()
    building_id = (await backend.buildings(who)).buildings[0].id
    meters = (await backend.meters(who, building_id)).meters
    await backend.submit(
        who, building_id, [ReadingIn(meter_id=meters[0].id, value="13420", taken_at=TAKEN)], "k"
    )
    await backend.readings(who, building_id)
    await backend.readings(who, building_id, "2026-10")
    big_tables = ("billing_slots", "billing_readings", "billing_buildings", "billing_tokens")

    scans = []
    async with backend._engine.connect() as connection:
        for statement, parameters in statements:
            plan = (
                await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            ).all()
            for step in plan:
                detail = str(step[-1])
                if detail.startswith("SCAN") and any(t in detail for t in big_tables):
                    scans.append((detail, statement.split("FROM")[1][:80]))

    assert len(statements) > 10
    assert scans == []
