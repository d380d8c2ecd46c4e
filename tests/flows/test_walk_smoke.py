"""The inspector's walk through a building, end to end against the fake Bot API."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from billing_client.errors import BillingUnavailable
from storage.models import SlotStatus, Submission
from tests.conftest import App
from tests.flows.walking import open_building, slots


async def test_values_are_checked_kept_and_sent(app: App) -> None:
    phone = await open_building(app)
    first = (await slots(app))[0]
    card = phone.last_bot_message()
    assert card is not None and "Прибор 1 из" in card.text
    assert f"Зав. номер: {first.serial_number}" in card.text

    reply = await phone.ask("abc", until="только цифры")
    assert "Введите показание" in reply.text
    too_long = "9" * (first.digits + 1)
    reply = await phone.ask(too_long, until="Слишком много цифр")
    assert f"не больше {first.digits} цифр до запятой" in reply.text

    value = first.previous_value or "1" * first.digits
    reply = await phone.ask(value.replace(".", ","), until="Прибор 2 из")
    stored = (await slots(app))[0]
    assert stored.status == SlotStatus.FILLED
    assert stored.entered_by == 1001
    assert stored.value == value

    await phone.tap("Пропустить", until="Почему пропускаем")
    await phone.tap("Нет доступа", until="Прибор 3 из")
    assert (await slots(app))[1].skip_reason == "no_access"

    await phone.tap("Отправить", until="Не все поля заполнены. Вернуться к заполнению?")
    reaction = await phone.tap("Отправить", until="Отправлено: 1")
    assert reaction.answer is not None
    await phone.wait_for("Главное меню")
    rows = await slots(app)
    assert rows[0].status == SlotStatus.ACCEPTED
    async with app.session_pool() as session:
        batches = list((await session.execute(select(Submission))).scalars())
    assert len(batches) == 1


async def test_old_buttons_do_not_act_on_the_wrong_slot(app: App) -> None:
    phone = await open_building(app, user_id=1002)
    old_card = phone.last_bot_message()
    assert old_card is not None
    value = (await slots(app))[0].previous_value or "1"
    await phone.ask(value, until="Прибор 2 из")
    rows = await slots(app)
    assert rows[0].status == SlotStatus.FILLED  # the old card has no buttons left
    shown = [m for m in phone.bot_messages() if m.buttons and not m.deleted]
    assert len(shown) == 1, "at most one message with live buttons"
    retired = next(m for m in phone.bot_messages() if m.message_id == old_card.message_id)
    assert retired.text.startswith("✅") and not retired.buttons


async def test_billing_outage_keeps_the_batch_and_a_later_send_delivers_it_once(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = await open_building(app, user_id=1003)
    value = (await slots(app))[0].previous_value or "1"
    await phone.ask(value, until="Прибор 2 из")
    real_submit = app.billing.submit
    keys: list[str] = []

    async def down(*args: object, **kwargs: object) -> object:
        keys.append(str(args[-1]))
        raise BillingUnavailable("billing is down")

    monkeypatch.setattr(app.billing, "submit", down)
    await phone.tap("Отправить", until="Не все поля заполнены")
    await phone.tap("Отправить", until="не отвечает")
    await phone.wait_for(lambda m: bool(m.buttons) and "Главное меню" in m.text)
    assert (await slots(app))[0].status == SlotStatus.SENDING  # kept, not lost

    async def recording(*args: object, **kwargs: object) -> object:
        keys.append(str(args[-1]))
        return await real_submit(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(app.billing, "submit", recording)
    await phone.tap("Передача показаний по дому", until="Выберите дом")
    card = await phone.ask("авиастраителей", until="Нашлось")
    await phone.tap(card.buttons[0][0], until="Введите показание")
    await phone.tap("Отправить", until="Не все поля заполнены")
    await phone.tap("Отправить", until="Отправлено: 1")
    assert (await slots(app))[0].status == SlotStatus.ACCEPTED
    assert len(keys) == 2 and keys[0] == keys[1], "the retry reuses the batch's key"
