"""Sending a building's values and the result, on each billing backend: the embedded
billing, and the HTTP client talking to the reference billing server on 127.0.0.1."""

from __future__ import annotations

from pydantic import SecretStr
from sqlalchemy import select

from billing_client.base import BillingAuth
from storage.models import SlotStatus, Submission
from tests.conftest import App
from tests.flows.walking import BUILDING_QUERY, phone_of, plausible, slots

DEMO = BillingAuth(login="demo", password=SecretStr("demo"))


async def accepted_values(app: App) -> dict[str, str]:
    """meter id -> value, as billing has them for the demo building this period."""
    buildings = await app.billing.buildings(DEMO)
    building = buildings.buildings[0]
    accepted = await app.billing.readings(DEMO, building.id)
    return {reading.meter_id: str(reading.value) for reading in accepted.readings}


async def test_core_flow_and_a_rejected_value_comes_back_on_its_card_not_an_error(
    any_billing_app: App,
) -> None:
    app = any_billing_app
    phone = phone_of(app)
    await phone.send_command("/start")
    await phone.wait_for("логин")
    await phone.ask("demo", until="пароль")
    welcome = await phone.ask("demo", until="Вы вошли")
    assert "ООО «УК Демо-Сибирь»" in welcome.text

    await phone.tap("Передача показаний по дому", until="Выберите дом")
    found = await phone.ask(BUILDING_QUERY, until="Нашлось")
    assert found.buttons[0][0] == "Авиастроителей ул., 3"
    await phone.tap(found.buttons[0][0], until="Введите показание")
    rows = await slots(app)
    first, second = rows[0], rows[1]

    refused = await phone.ask("9" * (first.digits + 1), until="Слишком много цифр")
    assert f"не больше {first.digits} цифр до запятой" in refused.text
    # Below the previous reading: the bot asks, the inspector keeps it, billing refuses it.
    below = plausible(first, above=-5)
    await phone.ask(below, until="меньше предыдущего")
    await phone.tap(f"Оставить {below}", until="Прибор 2 из")
    await phone.ask(plausible(second), until="Прибор 3 из")
    await phone.tap("Пропустить", until="Почему пропускаем?")
    await phone.tap("Нет доступа", until="Прибор 4 из")

    await phone.tap("Отправить", until="Не все поля заполнены. Вернуться к заполнению?")
    await phone.tap("Отправить", until="Отправлено: 2")
    result = next(m for m in phone.bot_messages() if "Отправлено: 2" in m.text)
    assert "Принято: 1." in result.text
    assert "Не принято: 1 — исправьте и отправьте снова:" in result.text
    assert f"• кв. {first.apartment}, № {first.serial_number}: " in result.text
    assert "меньше предыдущего" in result.text
    # The rejected slot is back in the draft, on the card at once.
    card = await phone.wait_for("Энергосбыт не принял")
    assert "Прибор 1 из" in card.text and f"не принял {below}" in card.text
    after = await slots(app)
    assert [s.status for s in after[:3]] == [
        SlotStatus.REJECTED,
        SlotStatus.ACCEPTED,
        SlotStatus.SKIPPED,
    ]
    assert await accepted_values(app) == {second.meter_id: plausible(second)}

    corrected = plausible(first)
    await phone.ask(corrected, until="Прибор 4 из")
    await phone.tap("Отправить", until="Не все поля заполнены")
    await phone.tap("Отправить", until="Отправлено: 1. Принято: 1.")
    await phone.wait_for("Главное меню")
    assert await accepted_values(app) == {
        first.meter_id: corrected,
        second.meter_id: plausible(second),
    }
    async with app.session_pool() as session:
        keys = (await session.execute(select(Submission.idempotency_key))).scalars().all()
    assert len(keys) == 2 and len(set(keys)) == 2, "one key per batch"
    assert (await slots(app))[0].status == SlotStatus.ACCEPTED


async def test_sending_when_everything_is_filled_or_skipped_asks_nothing(app: App) -> None:
    phone = phone_of(app)
    await phone.send_command("/start")
    await phone.wait_for("логин")
    await phone.ask("demo", until="пароль")
    await phone.ask("demo", until="Вы вошли")
    # The smallest demo building: Титова ул., 7.
    await phone.tap("Передача показаний по дому", until="Выберите дом")
    found = await phone.ask("титова 7", until="Нашлось")
    await phone.tap(found.buttons[0][0], until="Введите показание")
    rows = await slots(app)
    for number, row in enumerate(rows, start=1):
        if number % 5 == 0:
            await phone.tap("Пропустить", until="Почему пропускаем?")
            await phone.tap("Прибор неисправен")
        else:
            await phone.send(plausible(row))
        await phone.wait_for(f"Прибор {number + 1} из" if number < len(rows) else "пройдены")
    review = phone.last_bot_message()
    assert review is not None and "Не заполнено: 0" in review.text
    skipped = len(rows) // 5
    assert f"Заполнено: {len(rows) - skipped}" in review.text
    assert f"Пропущено: {skipped}" in review.text
    await phone.tap("Отправить", until=f"Отправлено: {len(rows) - skipped}")
    assert not any("Не все поля заполнены" in m.text for m in phone.bot_messages())
