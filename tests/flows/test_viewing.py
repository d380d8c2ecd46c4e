"""«Просмотр показаний приборов»: what billing accepted for a building, paged, and
earlier periods."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from pydantic import SecretStr

from billing_client.base import BillingAuth
from billing_client.embedded import EmbeddedBilling
from billing_client.models import Meter, ReadingIn
from services.viewing import VIEW_PAGE_SIZE, shift_period
from tests.conftest import App
from tests.flows.walking import choose_building, log_in, phone_of, shows

DEMO = BillingAuth(login="demo", password=SecretStr("demo"))


def above_previous(meter: Meter, above: int) -> str:
    previous = meter.previous.value if meter.previous else "0"
    integer, _, fraction = previous.partition(".")
    return f"{int(integer) + above}.{fraction}" if fraction else str(int(integer) + above)


async def accept(billing: EmbeddedBilling, meters: list[Meter], above: int) -> None:
    """Readings accepted by billing as if another batch had sent them."""
    readings = [
        ReadingIn(meter_id=m.id, value=above_previous(m, above), taken_at=billing.now())
        for m in meters
    ]
    result = await billing.submit(DEMO, "b-1", readings, str(uuid.uuid4()))
    assert not result.rejected


async def test_viewing_pages_and_periods_page_two_of_this_period_offers_no_later_one(
    app: App,
) -> None:
    billing = app.billing
    assert isinstance(billing, EmbeddedBilling)
    meters = (await billing.meters(DEMO, "b-1")).meters
    this_period = billing.current_period()
    # Last month, three readings were accepted (the same database, billing's clock
    # a month back).
    last_month = await EmbeddedBilling.open(
        app.settings.BILLING_DATABASE_URL,
        clock=lambda: datetime.now(billing.timezone) - timedelta(days=31),
    )
    try:
        earlier = last_month.current_period()
        await accept(last_month, meters[:3], above=1)
    finally:
        await last_month.close()
    assert earlier == shift_period(this_period, -1)
    count = VIEW_PAGE_SIZE + 5
    await accept(billing, meters[:count], above=7)

    phone = phone_of(app)
    await log_in(phone)
    await choose_building(phone, "Просмотр показаний приборов")
    view = await phone.wait_for(f"Принятые показания за {this_period}")
    first = meters[0]
    assert "Новосибирск, Авиастроителей ул., 3" in view.text
    assert f"кв. 1, № {first.serial_number}, день: {above_previous(first, 7)}" in view.text
    assert view.text.count("\nкв. ") == VIEW_PAGE_SIZE
    assert view.button_labels == ["1 / 2", "След. ›", "‹ Предыдущий период"]

    await phone.tap("След. ›", until=shows("2 / 2"))
    page_two = phone.last_bot_message()
    assert page_two is not None and page_two.text.count("\nкв. ") == 5
    assert page_two.button_labels == ["‹ Пред.", "2 / 2", "‹ Предыдущий период"]
    await phone.tap("‹ Пред.", until=shows("1 / 2"))

    await phone.tap("‹ Предыдущий период", until=f"Принятые показания за {earlier}")
    old = phone.last_bot_message()
    assert old is not None and old.text.count("\nкв. ") == 3
    assert f"день: {above_previous(first, 1)}" in old.text
    assert old.button_labels == ["‹ Предыдущий период", "Следующий период ›"]
    await phone.tap("‹ Предыдущий период", until=f"За {shift_period(earlier, -1)} принятых")
    await phone.tap("Следующий период ›", until=f"Принятые показания за {earlier}")
    await phone.tap("Следующий период ›", until=f"Принятые показания за {this_period}")
    assert len([m for m in phone.bot_messages() if m.buttons]) == 1, "one card, edited"


async def test_viewing_a_building_with_nothing_accepted_says_so(app: App) -> None:
    phone = phone_of(app)
    await log_in(phone)
    await choose_building(phone, "Просмотр показаний приборов")
    view = await phone.wait_for("принятых показаний нет")
    assert view.button_labels == ["‹ Предыдущий период"]
