"""The inspector's walk through a building, end to end against the fake Bot API."""

from __future__ import annotations

import asyncio

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


@pytest.mark.app_settings(OUTBOX_RETRY_BASE=0.2, OUTBOX_RETRY_MAX=0.5)
async def test_billing_outage_keeps_the_batch_and_the_worker_delivers_it_once(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = await open_building(app, user_id=1003)
    value = (await slots(app))[0].previous_value or "1"
    await phone.ask(value, until="Прибор 2 из")
    real_submit = app.billing.submit
    keys: list[str] = []
    recovered = asyncio.Event()

    async def down(*args: object, **kwargs: object) -> object:
        keys.append(str(args[-1]))
        if not recovered.is_set():
            raise BillingUnavailable("billing is down")
        return await real_submit(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(app.billing, "submit", down)
    await phone.tap("Отправить", until="Не все поля заполнены")
    await phone.tap("Отправить", until="не отвечает")
    await phone.wait_for("будут отправлены автоматически")
    await phone.wait_for(lambda m: bool(m.buttons) and "Главное меню" in m.text)
    assert (await slots(app))[0].status == SlotStatus.SENDING  # kept, not lost

    # Billing comes back: the worker sends the batch by itself, and the inspector,
    # who is already elsewhere, gets the result as a message.
    recovered.set()
    told = await phone.wait_for("Результат отправки", timeout=15)
    assert "Отправлено: 1. Принято: 1" in told.text
    assert (await slots(app))[0].status == SlotStatus.ACCEPTED
    assert len(set(keys)) == 1 and len(keys) >= 2, "every retry reuses the batch's key"
    await app.outbox.stop()  # lets the bookkeeping after the message finish
    async with app.session_pool() as session:
        batch = (await session.execute(select(Submission))).scalar_one()
    assert batch.notified_at is not None, "told: not announced again after a restart"
