"""Walking positions stay unique in a draft when billing changes the meter list mid-period.

Regression: a meter replaced or removed while its slot held a value kept its old
position next to the meter now listed there; the card showed the new meter, but the
typed value was checked against, and written into, the old one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from billing_client.base import BillingAuth
from billing_client.models import Building, BuildingMeters, BuildingRef, Meter, Previous
from services import walk
from services.walk import NeedsConfirmation, Saved
from storage.engine import create_engine, create_session_pool
from storage.migrate import upgrade_database
from storage.models import Account, DraftSlot
from tests.conftest import App
from tests.flows.walking import card_text, choose_building, open_building, plausible, slots
from tests.harness.databases import Databases

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
BUILDING = Building(id="b-1", city="Казань", street="Авиастроителей", house="1", address="Дом 1")
PREVIOUS = Previous(value="1000", date=date(2026, 10, 24))


def meter(meter_id: str, apartment: str, serial_number: str, *, previous: bool = True) -> Meter:
    return Meter(
        id=meter_id,
        apartment=apartment,
        serial_number=serial_number,
        digits=5,
        previous=PREVIOUS if previous else None,
    )


def listing(*meters: Meter) -> BuildingMeters:
    return BuildingMeters(
        building=BuildingRef(id=BUILDING.id, address=BUILDING.address),
        period="2026-11",
        meters=list(meters),
    )


M1, M2, M3 = meter("m-1", "1", "111"), meter("m-2", "2", "222"), meter("m-3", "3", "333")
M1_NEW = meter("m-1-new", "1", "999", previous=False)  # installed instead of M1


@pytest.fixture
async def engine(databases: Databases) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(databases.bot)
    yield engine
    await engine.dispose()


@pytest.fixture
async def pool(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    await upgrade_database(engine)
    pool = create_session_pool(engine)
    async with pool() as session:
        session.add(Account(id="acc", name="УК", login="demo"))
        await session.commit()
    return pool


async def open_with(pool: async_sessionmaker[AsyncSession], meters: BuildingMeters) -> int:
    async with pool() as session:
        progress = await walk.open_building(
            session, account_id="acc", building=BUILDING, meters=meters, now=NOW
        )
    return progress.draft_id


async def type_value(
    pool: async_sessionmaker[AsyncSession], draft_id: int, position: int, value: str
) -> walk.ValueOutcome:
    async with pool() as session:
        return await walk.enter_value(
            session,
            draft_id=draft_id,
            position=position,
            text=value,
            jump_limit=3000,
            user_id=1,
            message_id=None,
            now=NOW,
        )


async def walking_order(pool: async_sessionmaker[AsyncSession]) -> list[tuple[int, str]]:
    """(position, meter id) of every slot, by position."""
    async with pool() as session:
        rows = await session.execute(
            select(DraftSlot.position, DraftSlot.meter_id).order_by(DraftSlot.position)
        )
        return [(position, meter_id) for position, meter_id in rows.all()]


async def values(pool: async_sessionmaker[AsyncSession]) -> dict[str, str | None]:
    async with pool() as session:
        rows = await session.execute(select(DraftSlot.meter_id, DraftSlot.value))
        return {meter_id: value for meter_id, value in rows}


async def test_a_value_typed_on_a_replaced_meters_card_goes_into_the_new_meter(
    pool: async_sessionmaker[AsyncSession],
) -> None:
    draft_id = await open_with(pool, listing(M1, M2, M3))
    assert isinstance(await type_value(pool, draft_id, 0, "1010"), Saved)  # into M1

    # Billing replaced M1 by M1_NEW (no previous reading) during the period.
    await open_with(pool, listing(M1_NEW, M2, M3))
    async with pool() as session:
        card = await walk.next_open(session, draft_id)
    assert card is not None and card.meter_id == M1_NEW.id

    # 5 is far below M1's previous 1000, but M1_NEW has none: nothing to ask.
    typed = await type_value(pool, draft_id, card.position, "5")
    assert not isinstance(typed, NeedsConfirmation)
    assert isinstance(typed, Saved) and typed.slot.meter_id == M1_NEW.id
    assert await values(pool) == {"m-1": "1010", "m-1-new": "5", "m-2": None, "m-3": None}
    # The listed meters walk first; the replaced one, which keeps its value, after them.
    assert await walking_order(pool) == [(0, "m-1-new"), (1, "m-2"), (2, "m-3"), (3, "m-1")]


async def test_positions_stay_unique_when_meters_come_and_go_around_kept_values(
    pool: async_sessionmaker[AsyncSession],
) -> None:
    m2a, m4 = meter("m-2a", "2а", "224"), meter("m-4", "4", "444")
    draft_id = await open_with(pool, listing(M1, M2, M3))
    await type_value(pool, draft_id, 0, "1010")  # M1
    await type_value(pool, draft_id, 2, "1030")  # M3

    # M1 and M3 leave with their values, M2 stays, 2а and 4 appear: every row moves,
    # a listed one onto the place a kept one had (the order of the updates must not
    # make two rows share a position even for a moment).
    await open_with(pool, listing(M2, m4, m2a))
    assert await walking_order(pool) == [
        (0, "m-2"),
        (1, "m-2a"),
        (2, "m-4"),
        (3, "m-1"),
        (4, "m-3"),
    ]

    # Back again: M1 and M3 are listed anew and take their places in the walk.
    await open_with(pool, listing(M1, M2, M3, m2a, m4))
    assert await walking_order(pool) == [
        (0, "m-1"),
        (1, "m-2"),
        (2, "m-2a"),
        (3, "m-3"),
        (4, "m-4"),
    ]
    assert await values(pool) == {
        "m-1": "1010",
        "m-2": None,
        "m-2a": None,
        "m-3": "1030",
        "m-4": None,
    }
    async with pool() as session:
        progress = await walk.progress(session, draft_id)
    assert (progress.total, progress.filled, progress.empty) == (5, 2, 3)


async def test_the_migration_renumbers_positions_shared_before_it(engine: AsyncEngine) -> None:
    """Drafts refreshed before the fix may hold two slots at one position: none is lost."""
    await upgrade_database(engine, "0006")
    slot = (
        "INSERT INTO draft_slots (id, draft_id, position, meter_id, apartment, serial_number,"
        " digits, fraction_digits, status, value) VALUES"
        " (:id, 1, :position, :meter_id, '1', '1', 5, 0, :status, :value)"
    )
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO accounts (id, name, login, created_at)"
                " VALUES ('acc', 'УК', 'demo', CURRENT_TIMESTAMP)"
            )
        )
        await connection.execute(
            text(
                "INSERT INTO drafts (id, account_id, building_id, period, address, city, street,"
                " house, apartments, slots_total, refreshed_at) VALUES"
                " (1, 'acc', 'b-1', '2026-11', 'Дом 1', '', '', '', 3, 4, CURRENT_TIMESTAMP)"
            )
        )
        await connection.execute(
            text(slot),
            [
                # m-1 was replaced by m-1-new (listed at 0) while it held a value.
                {"id": 1, "position": 0, "meter_id": "m-1", "status": "filled", "value": "7"},
                {"id": 2, "position": 1, "meter_id": "m-2", "status": "empty", "value": None},
                {"id": 3, "position": 2, "meter_id": "m-3", "status": "empty", "value": None},
                {"id": 4, "position": 0, "meter_id": "m-1-new", "status": "empty", "value": None},
            ],
        )

    await upgrade_database(engine)

    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT position, meter_id, value FROM draft_slots ORDER BY position")
        )
        assert [tuple(row) for row in rows] == [
            (0, "m-1-new", None),
            (1, "m-2", None),
            (2, "m-3", None),
            (3, "m-1", "7"),
        ]


def relist(billing: Any, *, drop: set[str], add: Sequence[Meter] = ()) -> None:
    """From now on billing lists the building without the `drop` meters, with `add`."""
    meters_before = billing.meters

    async def changed(auth: BillingAuth, building_id: str) -> BuildingMeters:
        listed: BuildingMeters = await meters_before(auth, building_id)
        kept = [m for m in listed.meters if m.id not in drop]
        return listed.model_copy(update={"meters": [*kept, *add]})

    billing.meters = changed


async def test_the_inspector_fills_the_meter_installed_instead_of_one_with_a_value(
    app: App,
) -> None:
    """Flow: billing replaced apartment 1's meter after its day reading was typed."""
    phone = await open_building(app)
    old_day, old_night = (await slots(app))[:2]  # apartment 1's meter: день, ночь
    await phone.ask(plausible(old_day), until="Прибор 2 из")

    relist(
        app.dispatcher["billing"],
        drop={old_day.meter_id, old_night.meter_id},
        add=[
            Meter(id=f"new-{zone}", apartment="1", serial_number="0000001", digits=5, tariff=zone)
            for zone in ("день", "ночь")
        ],
    )
    await phone.tap("В меню", until="Главное меню")
    await choose_building(phone)
    await phone.wait_for("Зав. номер: 0000001")
    assert "Прибор 1 из" in card_text(phone)

    # Below the old meter's previous reading: no question, the new meter has none.
    await phone.ask("5", until="Прибор 2 из")
    assert not any("меньше предыдущего" in m.text for m in phone.bot_messages())
    values = {row.meter_id: row.value for row in await slots(app)}
    assert values["new-день"] == "5"
    assert values[old_day.meter_id] == plausible(old_day), "the value typed before is kept"
    positions = [row.position for row in await slots(app)]
    assert positions == list(range(len(positions)))


async def test_a_value_typed_on_a_card_goes_to_its_meter_after_the_list_is_renumbered(
    app: App,
) -> None:
    """Flow: apartment 1's meter leaves billing's list while Иван's card shows another
    meter; Пётр opens the building, which renumbers the walk under Иван's card."""
    ivan = await open_building(app)
    rows = await slots(app)
    day, night, shown = rows[:3]  # apartment 1: день, ночь; then the next meter
    await ivan.ask(plausible(day), until="Прибор 2 из")
    await ivan.ask(plausible(night), until="Прибор 3 из")
    assert f"Зав. номер: {shown.serial_number}" in card_text(ivan)

    relist(app.dispatcher["billing"], drop={day.meter_id, night.meter_id})
    await open_building(app, user_id=1002, name="Пётр")
    moved = {row.meter_id: row.position for row in await slots(app)}
    assert moved[shown.meter_id] == 0, "the walk was renumbered under Иван's card"

    await ivan.ask(plausible(shown), until="Прибор 2 из")
    values = {row.meter_id: row.value for row in await slots(app)}
    assert values[shown.meter_id] == plausible(shown)
    assert sum(1 for row in await slots(app) if row.entered_by == 1001) == 3
    assert f"Зав. номер: {rows[3].serial_number}" in card_text(ivan)


async def test_a_value_typed_on_the_card_of_a_meter_billing_dropped_is_answered(
    app: App,
) -> None:
    ivan = await open_building(app)
    rows = await slots(app)
    first, second = rows[:2]
    relist(app.dispatcher["billing"], drop={first.meter_id})
    await open_building(app, user_id=1002, name="Пётр")

    card = await ivan.ask(plausible(first), until="больше нет в списке дома")
    assert f"Зав. номер: {second.serial_number}" in card.text
    assert "Прибор 1 из" in card.text
    assert [row.value for row in await slots(app)] == [None] * (len(rows) - 1)


async def test_the_card_buttons_find_the_cards_meter_after_the_list_is_renumbered(
    app: App,
) -> None:
    """Flow: apartment 1's night slot leaves billing's list while Иван's card shows the
    meter after it; Пётр opens the building. «Назад» goes to the slot before Иван's
    meter, and «Вернуться» from «К квартире №…» back to his meter, not by the old
    position."""
    ivan = await open_building(app)
    rows = await slots(app)
    day, night, shown = rows[:3]
    await ivan.ask(plausible(day), until="Прибор 2 из")
    await ivan.ask(plausible(night), until="Прибор 3 из")

    relist(app.dispatcher["billing"], drop={night.meter_id})
    await open_building(app, user_id=1002, name="Пётр")
    assert {row.meter_id: row.position for row in await slots(app)}[shown.meter_id] == 1

    await ivan.tap("К квартире №…", until="Напишите номер квартиры")
    await ivan.tap("Вернуться", until=f"Зав. номер: {shown.serial_number}")
    assert "Прибор 2 из" in card_text(ivan)

    await ivan.tap("Назад", until="Прибор 1 из")
    assert f"Зав. номер: {day.serial_number}" in card_text(ivan)
