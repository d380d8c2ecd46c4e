"""The billing contract (shared/billing-api.md), run on both backends.

Every test runs twice: against EmbeddedBilling in-process, and through
HttpBilling against the reference server on 127.0.0.1. Whatever the bot sees
must be the same either way.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pydantic import SecretStr

from billing_client.errors import (
    BillingRequestError,
    IdempotencyConflict,
    InvalidCredentials,
    NotFound,
    TooManyAttempts,
)
from billing_client.models import ReadingIn
from tests.billing.conftest import (
    LOGIN,
    OTHER_LOGIN,
    OTHER_PASSWORD,
    PASSWORD,
    PREVIOUS_DAY,
    TZ,
    Contract,
    by_place,
)

TAKEN = datetime(2026, 11, 24, 9, 41, tzinfo=TZ)


def reading(meter_id: str, value: str, taken_at: datetime = TAKEN) -> ReadingIn:
    return ReadingIn(meter_id=meter_id, value=value, taken_at=taken_at)


def raw_reading(meter_id: str, value: str) -> ReadingIn:
    """A reading with a value the model would refuse, as a buggy client could send it."""
    return ReadingIn.model_construct(meter_id=meter_id, value=value, taken_at=TAKEN)


async def main_building(contract: Contract) -> str:
    auth = contract.auth()
    buildings = await contract.billing.buildings(auth)
    return buildings.buildings[0].id


# -- login ----------------------------------------------------------------------


async def test_login_returns_a_token_and_the_account(contract: Contract) -> None:
    result = await contract.billing.login(LOGIN, SecretStr(PASSWORD))

    assert result.token
    assert result.account.name == "ООО «УК Сибирь»"
    assert result.account.inn == "5405000000"
    assert result.account.id.startswith("acc-")
    assert result.expires_at.tzinfo is not None
    assert result.expires_at > contract.clock.now


async def test_login_is_case_insensitive_about_the_login(contract: Contract) -> None:
    result = await contract.billing.login(" UK-Sibir ", SecretStr(PASSWORD))

    assert result.account.name == "ООО «УК Сибирь»"


@pytest.mark.parametrize(
    ("login", "password"), [(LOGIN, "wrong password"), ("nobody", PASSWORD), (LOGIN, "")]
)
async def test_wrong_credentials_are_invalid_credentials(
    contract: Contract, login: str, password: str
) -> None:
    with pytest.raises(InvalidCredentials) as caught:
        await contract.billing.login(login, SecretStr(password))

    assert caught.value.code == "invalid_credentials"


async def test_ten_failed_logins_lock_the_login_for_fifteen_minutes(contract: Contract) -> None:
    for _ in range(10):
        with pytest.raises(InvalidCredentials):
            await contract.billing.login(LOGIN, SecretStr("guess"))

    # Even the right password is refused while the login is locked.
    with pytest.raises(TooManyAttempts) as caught:
        await contract.billing.login(LOGIN, SecretStr(PASSWORD))
    assert caught.value.retry_after == pytest.approx(15 * 60, abs=1)
    assert caught.value.code == "too_many_attempts"

    # Another account is not affected.
    await contract.billing.login(OTHER_LOGIN, SecretStr(OTHER_PASSWORD))

    contract.clock.advance(minutes=15, seconds=1)
    result = await contract.billing.login(LOGIN, SecretStr(PASSWORD))
    assert result.token


# -- tokens -----------------------------------------------------------------------


async def test_first_call_logs_in_and_keeps_the_token(contract: Contract) -> None:
    auth = contract.auth()
    assert auth.token is None

    await contract.billing.buildings(auth)
    token = auth.token
    await contract.billing.buildings(auth)

    assert token is not None
    assert auth.token == token


async def test_expired_token_is_renewed_transparently(contract: Contract) -> None:
    auth = contract.auth()
    before = await contract.billing.buildings(auth)
    old_token = auth.token

    contract.clock.advance(hours=13)  # past the 12-hour token lifetime
    after = await contract.billing.buildings(auth)

    assert after == before
    assert auth.token is not None and auth.token != old_token
    if contract.served is not None:
        assert contract.served.faults.hits["login"] == 2


async def test_ended_session_is_renewed_transparently(contract: Contract) -> None:
    auth = contract.auth()
    building_id = await main_building(contract)
    old_token = auth.token

    assert await contract.backend.expire_tokens(LOGIN) == 1
    meters = await contract.billing.meters(auth, building_id)

    assert len(meters.meters) == 4
    assert auth.token != old_token


async def test_renewal_with_a_changed_password_fails_as_invalid_credentials(
    contract: Contract,
) -> None:
    auth = contract.auth()
    await contract.billing.buildings(auth)
    auth.password = SecretStr("the old password")  # changed in billing meanwhile

    contract.clock.advance(hours=13)
    with pytest.raises(InvalidCredentials):
        await contract.billing.buildings(auth)


async def test_a_token_of_unknown_origin_is_renewed(contract: Contract) -> None:
    auth = contract.auth()
    auth.token = SecretStr("not-a-token-billing-ever-issued")

    buildings = await contract.billing.buildings(auth)

    assert len(buildings.buildings) == 2
    assert auth.token.get_secret_value() != "not-a-token-billing-ever-issued"


# -- buildings and meters -----------------------------------------------------------


async def test_buildings_are_the_accounts_own_in_billing_order(contract: Contract) -> None:
    result = await contract.billing.buildings(contract.auth())

    assert [(b.city, b.street, b.house) for b in result.buildings] == [
        ("Новосибирск", "Авиастроителей ул.", "0/0"),
        ("Новосибирск", "Красный пр-т", "17"),
    ]
    assert result.buildings[0].address == "Новосибирск, Авиастроителей ул., 0/0"
    assert len({b.id for b in result.buildings}) == 2


async def test_meters_are_the_slots_of_the_building_for_the_current_period(
    contract: Contract,
) -> None:
    building_id = await main_building(contract)

    result = await contract.billing.meters(contract.auth(), building_id)

    assert result.period == "2026-11"
    assert result.building.id == building_id
    assert result.building.address == "Новосибирск, Авиастроителей ул., 0/0"
    assert [(m.apartment, m.serial_number, m.tariff) for m in result.meters] == [
        ("1", "123456789", None),
        ("1а", "0098765", "день"),
        ("1а", "0098765", "ночь"),
        ("НП-1", "555", None),
    ]
    slots = by_place(result.meters)
    single = slots[("1", None)]
    assert (single.digits, single.fraction_digits) == (5, 0)
    assert single.previous is not None
    assert (single.previous.value, single.previous.date) == ("13305", PREVIOUS_DAY)
    assert slots[("1а", "день")].previous is None
    night = slots[("1а", "ночь")]
    assert night.previous is not None and night.previous.value == "00412.5"
    assert (night.digits, night.fraction_digits) == (6, 1)
    assert len({m.id for m in result.meters}) == 4


@pytest.mark.parametrize("building_id", ["b-999999", "garbage", "m-1", "b-0", "b-1/../b-2"])
async def test_meters_of_an_unknown_building_are_not_found(
    contract: Contract, building_id: str
) -> None:
    with pytest.raises(NotFound) as caught:
        await contract.billing.meters(contract.auth(), building_id)

    assert caught.value.code == "not_found"


async def test_another_accounts_building_is_not_found(contract: Contract) -> None:
    foreign = (
        await contract.billing.buildings(contract.auth(OTHER_LOGIN, OTHER_PASSWORD))
    ).buildings
    auth = contract.auth()

    with pytest.raises(NotFound):
        await contract.billing.meters(auth, foreign[0].id)
    with pytest.raises(NotFound):
        await contract.billing.readings(auth, foreign[0].id)
    with pytest.raises(NotFound):
        await contract.billing.submit(auth, foreign[0].id, [], "key-foreign")


# -- submitting -----------------------------------------------------------------------


async def test_valid_readings_are_accepted_and_listed(contract: Contract) -> None:
    auth = contract.auth()
    building_id = await main_building(contract)
    slots = by_place((await contract.billing.meters(auth, building_id)).meters)
    single, day = slots[("1", None)], slots[("1а", "день")]

    result = await contract.billing.submit(
        auth,
        building_id,
        [reading(single.id, "13420"), reading(day.id, "000123.4")],
        "key-accepted",
    )

    assert result.submission_id.startswith("s-")
    assert result.accepted == [single.id, day.id]
    assert result.rejected == []
    listed = await contract.billing.readings(auth, building_id)
    assert listed.period == "2026-11"
    assert [(r.meter_id, r.value, r.submission_id) for r in listed.readings] == [
        (single.id, "13420", result.submission_id),
        (day.id, "000123.4", result.submission_id),
    ]
    assert listed.readings[0].taken_at == TAKEN
    assert listed.readings[0].submitted_at == contract.clock.now


async def test_each_reading_is_judged_on_its_own(contract: Contract) -> None:
    auth = contract.auth()
    building_id = await main_building(contract)
    other_building = (await contract.billing.buildings(auth)).buildings[1].id
    slots = by_place((await contract.billing.meters(auth, building_id)).meters)
    elsewhere = (await contract.billing.meters(auth, other_building)).meters[0]
    single, day, night, shop = (
        slots[("1", None)],
        slots[("1а", "день")],
        slots[("1а", "ночь")],
        slots[("НП-1", None)],
    )

    result = await contract.billing.submit(
        auth,
        building_id,
        [
            reading(single.id, "13000"),  # below 13305
            raw_reading(day.id, "12a"),  # not digits
            reading(night.id, "1234567"),  # 7 digits on a 6-digit drum
            reading(shop.id, "1.123"),  # 3 fraction digits, the meter shows 2
            reading(elsewhere.id, "00200"),  # a meter of another building
            reading("m-99999999", "1"),  # no such meter at all
            reading(shop.id, "00001234.56"),  # fine
        ],
        "key-mixed",
    )

    assert result.accepted == [shop.id]
    assert [(r.meter_id, r.code) for r in result.rejected] == [
        (single.id, "below_previous"),
        (day.id, "invalid_value"),
        (night.id, "too_many_digits"),
        (shop.id, "too_many_digits"),
        (elsewhere.id, "unknown_meter"),
        ("m-99999999", "unknown_meter"),
    ]
    assert all(r.message for r in result.rejected)
    assert "13305" in result.rejected[0].message
    listed = await contract.billing.readings(auth, building_id)
    assert [(r.meter_id, r.value) for r in listed.readings] == [(shop.id, "00001234.56")]


async def test_a_reading_equal_to_the_previous_is_accepted(contract: Contract) -> None:
    auth = contract.auth()
    building_id = await main_building(contract)
    single = by_place((await contract.billing.meters(auth, building_id)).meters)[("1", None)]

    result = await contract.billing.submit(
        auth, building_id, [reading(single.id, "13305")], "key-equal"
    )

    assert result.accepted == [single.id]


async def test_readings_outside_the_acceptance_window_are_period_closed(
    contract: Contract,
) -> None:
    auth = contract.auth()
    building_id = await main_building(contract)
    single = by_place((await contract.billing.meters(auth, building_id)).meters)[("1", None)]

    contract.clock.advance(days=2)  # the 26th: the window is the 23rd to the 25th
    result = await contract.billing.submit(
        auth, building_id, [reading(single.id, "13420")], "key-closed"
    )

    assert result.accepted == []
    assert [(r.meter_id, r.code) for r in result.rejected] == [(single.id, "period_closed")]
    assert "с 23 по 25" in result.rejected[0].message
    assert (await contract.billing.readings(auth, building_id)).readings == []


async def test_same_key_and_body_replays_the_first_answer_and_stores_nothing_twice(
    contract: Contract,
) -> None:
    auth = contract.auth()
    building_id = await main_building(contract)
    single = by_place((await contract.billing.meters(auth, building_id)).meters)[("1", None)]
    batch = [reading(single.id, "13420")]

    first = await contract.billing.submit(auth, building_id, batch, "key-replay")
    contract.clock.advance(minutes=5)
    again = await contract.billing.submit(auth, building_id, batch, "key-replay")

    assert again == first
    assert await contract.backend.submission_count() == 1
    listed = await contract.billing.readings(auth, building_id)
    assert len(listed.readings) == 1
    assert listed.readings[0].submitted_at == contract.clock.now - timedelta(minutes=5)


async def test_a_replay_answers_as_the_first_time_even_after_the_window_closed(
    contract: Contract,
) -> None:
    auth = contract.auth()
    building_id = await main_building(contract)
    single = by_place((await contract.billing.meters(auth, building_id)).meters)[("1", None)]
    batch = [reading(single.id, "13420")]
    first = await contract.billing.submit(auth, building_id, batch, "key-late-replay")

    contract.clock.advance(days=3)
    again = await contract.billing.submit(auth, building_id, batch, "key-late-replay")

    assert again == first


async def test_same_key_with_a_different_body_is_a_conflict(contract: Contract) -> None:
    auth = contract.auth()
    building_id = await main_building(contract)
    single = by_place((await contract.billing.meters(auth, building_id)).meters)[("1", None)]
    await contract.billing.submit(auth, building_id, [reading(single.id, "13420")], "key-409")

    with pytest.raises(IdempotencyConflict) as caught:
        await contract.billing.submit(auth, building_id, [reading(single.id, "13421")], "key-409")

    assert caught.value.code == "idempotency_conflict"
    listed = await contract.billing.readings(auth, building_id)
    assert [r.value for r in listed.readings] == ["13420"]


async def test_keys_belong_to_their_account(contract: Contract) -> None:
    main_auth, other_auth = contract.auth(), contract.auth(OTHER_LOGIN, OTHER_PASSWORD)
    main_id = await main_building(contract)
    other_id = (await contract.billing.buildings(other_auth)).buildings[0].id
    main_meter = (await contract.billing.meters(main_auth, main_id)).meters[0]
    other_meter = (await contract.billing.meters(other_auth, other_id)).meters[0]

    first = await contract.billing.submit(
        main_auth, main_id, [reading(main_meter.id, "13420")], "shared-key"
    )
    second = await contract.billing.submit(
        other_auth, other_id, [reading(other_meter.id, "00010")], "shared-key"
    )

    assert first.submission_id != second.submission_id
    assert second.accepted == [other_meter.id]


async def test_a_missing_idempotency_key_is_refused(contract: Contract) -> None:
    auth = contract.auth()
    building_id = await main_building(contract)
    single = by_place((await contract.billing.meters(auth, building_id)).meters)[("1", None)]

    with pytest.raises(BillingRequestError) as caught:
        await contract.billing.submit(auth, building_id, [reading(single.id, "13420")], "")

    assert caught.value.status == 400
    assert caught.value.code == "idempotency_key_required"
    assert await contract.backend.submission_count() == 0


async def test_a_later_accepted_reading_replaces_the_earlier_one(contract: Contract) -> None:
    auth = contract.auth()
    building_id = await main_building(contract)
    single = by_place((await contract.billing.meters(auth, building_id)).meters)[("1", None)]
    await contract.billing.submit(auth, building_id, [reading(single.id, "13520")], "key-typo")

    # The typo is corrected downwards: still above last period's 13305, so accepted.
    fix = await contract.billing.submit(auth, building_id, [reading(single.id, "13420")], "key-fix")

    assert fix.accepted == [single.id]
    listed = await contract.billing.readings(auth, building_id)
    assert [(r.value, r.submission_id) for r in listed.readings] == [("13420", fix.submission_id)]
    meters = by_place((await contract.billing.meters(auth, building_id)).meters)
    previous = meters[("1", None)].previous
    assert previous is not None and previous.value == "13305"


async def test_readings_are_kept_per_period(contract: Contract) -> None:
    auth = contract.auth()
    building_id = await main_building(contract)
    single = by_place((await contract.billing.meters(auth, building_id)).meters)[("1", None)]
    await contract.billing.submit(auth, building_id, [reading(single.id, "13420")], "key-nov")

    contract.clock.advance(days=30)  # 24 December
    december = await contract.billing.readings(auth, building_id)
    november = await contract.billing.readings(auth, building_id, "2026-11")
    meters = await contract.billing.meters(auth, building_id)

    assert december.period == "2026-12" and december.readings == []
    assert [(r.meter_id, r.value) for r in november.readings] == [(single.id, "13420")]
    # What was accepted in November is December's previous reading.
    assert meters.period == "2026-12"
    previous = by_place(meters.meters)[("1", None)].previous
    assert previous is not None
    assert (previous.value, previous.date) == ("13420", TAKEN.date())
    below = await contract.billing.submit(
        auth, building_id, [reading(single.id, "13400", TAKEN + timedelta(days=30))], "key-dec"
    )
    assert [r.code for r in below.rejected] == ["below_previous"]


async def test_a_malformed_period_is_refused(contract: Contract) -> None:
    building_id = await main_building(contract)

    with pytest.raises(BillingRequestError) as caught:
        await contract.billing.readings(contract.auth(), building_id, "2026-13")

    assert (caught.value.status, caught.value.code) == (400, "invalid_period")
