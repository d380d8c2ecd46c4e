"""Walking a building's meters: the card, moving around, skipping, warnings, review,
leaving and coming back, two inspectors on one draft. The real dispatcher in-process
against the fake Bot API server and the embedded billing's demo account."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text

from services.apartments import apartment_sort_key
from storage.engine import create_engine
from storage.models import SlotStatus, TelegramUser
from tests.conftest import App, make_settings, running_app
from tests.flows.walking import (
    bold_parts,
    card_text,
    choose_building,
    live_cards,
    open_building,
    plausible,
    shows,
    slots,
)
from tests.harness.fake_telegram import FakeTelegram


async def test_the_card_shows_apartment_serial_capacity_zone_and_progress(app: App) -> None:
    phone = await open_building(app)
    rows = await slots(app)
    first = rows[0]
    text = card_text(phone)
    assert "Новосибирск, Авиастроителей ул., 3" in text
    apartments = len({r.apartment for r in rows})
    assert f"{apartments} квартир, {len(rows)} приборов, заполнено 0" in text
    assert f"Квартира: {first.apartment}" in text
    assert f"Зав. номер: {first.serial_number}" in text
    assert f"Значность: {first.digits} (+{first.fraction_digits} после запятой)" in text
    assert f"Тариф: {first.tariff}" in text
    assert f"Прибор 1 из {len(rows)}" in text
    assert "Предыдущее показание" not in text, "off by default, as in the seed"
    assert phone.last_bot_message().button_labels == [  # type: ignore[union-attr]
        "Назад",
        "Пропустить",
        "К квартире №…",
        "Отправить",
        "В меню",
    ]
    # The other addresses are gone: the list became the building's header.
    assert not any("Красный пр-т" in m.text for m in phone.bot_messages())
    # Formatted, not tags: the address and the apartment stand out in bold.
    card = phone.last_bot_message()
    assert card is not None and "<b>" not in card.text
    assert first.apartment in bold_parts(card)
    assert any("Авиастроителей" in part for part in bold_parts(card))


async def test_slots_come_in_natural_apartment_order_non_residential_last(app: App) -> None:
    await open_building(app)
    apartments = [row.apartment for row in await slots(app)]
    assert apartments == sorted(apartments, key=apartment_sort_key)
    assert apartments.index("9") < apartments.index("10") < apartments.index("38")
    assert apartments.index("38") < apartments.index("38а") < apartments.index("39")
    assert apartments[-1].startswith("НП-") and not any(
        a.startswith("НП-") for a in apartments[: apartments.index("НП-1")]
    )


async def test_previous_reading_is_shown_after_switching_it_on_and_is_remembered(
    app: App,
) -> None:
    phone = await open_building(app)
    first = (await slots(app))[0]
    await phone.tap("В меню", until="Главное меню")
    await phone.tap("Настройки", until="Настройки")
    assert "⬜️ Предыдущее показание" in phone.last_bot_message().button_labels  # type: ignore[union-attr]
    reaction = await phone.tap("⬜️ Предыдущее показание", until=shows("☑️ Предыдущее показание"))
    assert reaction.answer is not None
    assert reaction.answer.get("text") == "Сохранено: предыдущее показание показывается."
    await phone.tap("В меню", until="Главное меню")
    await choose_building(phone)
    card = await phone.wait_for("Введите показание")
    assert first.previous_date is not None
    shown_date = first.previous_date.strftime("%d.%m.%Y")
    assert f"Предыдущее показание: {first.previous_value} от {shown_date}" in card.text
    async with app.session_pool() as session:
        user = await session.get(TelegramUser, 1001)
        assert user is not None and user.show_previous

    # Per user: another inspector of the same account does not see it.
    other = await open_building(app, user_id=1002, name="Пётр")
    assert "Предыдущее показание" not in card_text(other)

    # And switched off again, it is gone.
    await phone.tap("В меню", until="Главное меню")
    await phone.tap("Настройки", until="Настройки")
    await phone.tap("☑️ Предыдущее показание", until=shows("⬜️ Предыдущее показание"))
    await phone.tap("В меню", until="Главное меню")
    await choose_building(phone)
    card = await phone.wait_for("Введите показание")
    assert "Предыдущее показание" not in card.text


async def test_leaving_the_card_for_the_menu_leaves_one_message_with_buttons(app: App) -> None:
    phone = await open_building(app)
    card = phone.last_bot_message()
    assert card is not None
    await phone.tap("В меню", until="Главное меню")
    live = live_cards(phone)
    assert len(live) == 1 and live[0].message_id == card.message_id, "the card became the menu"


async def test_back_shows_the_previous_slot_with_its_value(app: App) -> None:
    phone = await open_building(app)
    first = (await slots(app))[0]
    value = plausible(first)
    await phone.ask(value, until="Прибор 2 из")
    card = (await phone.tap("Назад", until="Прибор 1 из")).messages
    text = card_text(phone)
    assert f"Введено: {value}" in text and "Напишите новое значение, чтобы исправить" in text
    assert card  # the card was edited in place
    # «Назад» on the first slot stays there.
    await phone.tap("Назад")
    assert "Прибор 1 из" in card_text(phone)
    # A new value corrects it and the walk goes on to the next empty slot.
    corrected = plausible(first, above=2)
    await phone.ask(corrected, until="Прибор 2 из")
    assert (await slots(app))[0].value == corrected


async def test_jump_to_an_apartment_by_its_number(app: App) -> None:
    phone = await open_building(app)
    rows = await slots(app)
    await phone.tap("К квартире №…", until="Напишите номер квартиры")

    reply = await phone.ask("999", until="в этом доме нет")
    assert "Квартиры «999» в этом доме нет" in reply.text
    assert reply.button_labels == ["Вернуться"]
    reply = await phone.ask("10а", until="в этом доме нет")  # there is a 38а, not a 10а
    assert "«10а»" in reply.text

    card = await phone.ask("38А", until="Квартира: 38а")
    position = next(r.position for r in rows if r.apartment == "38а")
    assert f"Прибор {position + 1} из" in card.text
    value = plausible(rows[position])
    await phone.ask(value, until=f"Прибор {position + 2} из")
    assert (await slots(app))[position].value == value

    await phone.tap("К квартире №…", until="Напишите номер квартиры")
    await phone.ask("кв. 10", until="Квартира: 10")
    await phone.tap("К квартире №…", until="Напишите номер квартиры")
    await phone.tap("Вернуться", until="Введите показание")
    assert "Квартира: 10" in card_text(phone)


async def test_skip_asks_a_reason_and_keeps_each_one(app: App) -> None:
    phone = await open_building(app)
    reasons = {
        "Нет доступа": "no_access",
        "Прибор неисправен": "broken",
        "Не читается": "unreadable",
        "Прибор заменён": "replaced",
        "Без причины": "none",
    }
    for number, label in enumerate(reasons, start=1):
        reaction = await phone.tap("Пропустить", until="Почему пропускаем?")
        assert reaction.answer is not None
        assert phone.last_bot_message().button_labels == [*reasons, "Вернуться"]  # type: ignore[union-attr]
        await phone.tap(label, until=f"Прибор {number + 1} из")
        assert f"пропущено — {label}" in phone.bot_messages()[-2].text
    rows = await slots(app)
    assert [r.skip_reason for r in rows[:5]] == list(reasons.values())
    assert all(r.status == SlotStatus.SKIPPED and r.entered_by == 1001 for r in rows[:5])
    # The header tells the skipped from the filled.
    assert "приборов, заполнено 0, пропущено 5\n" in card_text(phone)

    # «Вернуться» from the reasons leaves the slot as it was.
    await phone.tap("Пропустить", until="Почему пропускаем?")
    await phone.tap("Вернуться", until="Введите показание")
    assert (await slots(app))[5].status == SlotStatus.EMPTY

    # A skipped slot takes a value later: «Назад», then type it.
    await phone.tap("Назад", until="Пропущено: Без причины")
    value = plausible(rows[4])
    await phone.ask(value, until="Прибор 6 из")
    assert (await slots(app))[4].status == SlotStatus.FILLED
    assert "приборов, заполнено 1, пропущено 4\n" in card_text(phone)


async def test_below_previous_and_big_jump_are_kept_only_after_confirmation(app: App) -> None:
    phone = await open_building(app)
    rows = await slots(app)
    first, second = rows[0], rows[1]
    assert first.previous_value is not None and second.previous_value is not None

    below = plausible(first, above=-10)
    warning = await phone.ask(below, until="меньше предыдущего")
    assert f"Показание {below} меньше предыдущего ({first.previous_value}) на 10" in warning.text
    assert warning.button_labels == [f"Оставить {below}", "Исправить"]
    assert (await slots(app))[0].status == SlotStatus.EMPTY, "not kept before the answer"
    await phone.tap("Исправить", until="Введите показание")
    assert "Прибор 1 из" in card_text(phone)
    await phone.ask(below, until="меньше предыдущего")
    await phone.tap(f"Оставить {below}", until="Прибор 2 из")
    kept = (await slots(app))[0]
    assert (kept.status, kept.value, kept.warning) == (SlotStatus.FILLED, below, "below_previous")

    jump = plausible(second, above=3001)
    warning = await phone.ask(jump, until="больше предыдущего")
    assert f"больше предыдущего ({second.previous_value}) на 3001" in warning.text
    assert "кВт·ч — это больше 3000" in warning.text
    await phone.tap(f"Оставить {jump}", until="Прибор 3 из")
    assert (await slots(app))[1].warning == "big_jump"
    # Exactly JUMP_LIMIT above is no jump.
    third = rows[2]
    await phone.ask(plausible(third, above=3000), until="Прибор 4 из")
    assert (await slots(app))[2].warning is None


async def test_review_after_the_last_slot_counts_and_lists_warnings(app: App) -> None:
    phone = await open_building(app)
    rows = await slots(app)
    await phone.ask(plausible(rows[0]), until="Прибор 2 из")
    await phone.tap("Пропустить", until="Почему пропускаем?")
    await phone.tap("Нет доступа", until="Прибор 3 из")
    # Straight to the last apartment: after its last slot comes the review.
    last = rows[-1]
    await phone.tap("К квартире №…", until="Напишите номер квартиры")
    await phone.ask(last.apartment, until=f"Квартира: {last.apartment}")
    for row in rows[-2:]:
        if row.apartment != last.apartment:
            continue
        below = plausible(row, above=-1)
        await phone.ask(below, until="меньше предыдущего")
        await phone.tap(f"Оставить {below}")
    review = await phone.wait_for("Остались незаполненные приборы")
    filled = 1 + sum(r.apartment == last.apartment for r in rows)
    assert f"Заполнено: {filled}" in review.text
    assert "Пропущено: 1" in review.text
    assert f"Не заполнено: {len(rows) - filled - 1}" in review.text
    assert "Оставлены после предупреждения:" in review.text
    assert f"кв. {last.apartment}, № {last.serial_number}" in review.text
    assert review.button_labels == ["Вернуться к заполнению", "Отправить"]

    await phone.tap("Вернуться к заполнению", until="Прибор 3 из")


async def test_send_with_empty_slots_asks_and_return_goes_to_the_first_empty(app: App) -> None:
    phone = await open_building(app)
    rows = await slots(app)
    await phone.ask(plausible(rows[0]), until="Прибор 2 из")
    await phone.ask(plausible(rows[1]), until="Прибор 3 из")
    await phone.tap("К квартире №…", until="Напишите номер квартиры")
    await phone.ask("5", until="Квартира: 5")
    five = next(r for r in rows if r.apartment == "5")
    await phone.ask(plausible(five), until=f"Прибор {five.position + 2} из")

    question = (await phone.tap("Отправить", until="Не все поля заполнены")).messages
    assert question
    shown = phone.last_bot_message()
    assert shown is not None and shown.text == "Не все поля заполнены. Вернуться к заполнению?"
    assert shown.button_labels == ["Вернуться", "Отправить"]
    await phone.tap("Вернуться", until="Введите показание")
    assert "Прибор 3 из" in card_text(phone), "the first empty slot, not the next one"
    assert all(r.status != SlotStatus.ACCEPTED for r in await slots(app)), "nothing sent"


async def test_leaving_and_coming_back_resumes_at_the_first_empty_slot(app: App) -> None:
    phone = await open_building(app)
    rows = await slots(app)
    await phone.ask(plausible(rows[0]), until="Прибор 2 из")
    await phone.ask(plausible(rows[1]), until="Прибор 3 из")
    await phone.tap("В меню", until="Главное меню")
    await phone.send_command("/menu")
    await phone.wait_for(shows("Передача показаний по дому"))
    await choose_building(phone)
    card = await phone.wait_for("Введите показание")
    assert "Продолжаем с первого незаполненного прибора." in card.text
    assert "заполнено 2" in card.text and "Прибор 3 из" in card.text
    assert [r.value for r in (await slots(app))[:2]] == [plausible(rows[0]), plausible(rows[1])]


async def test_two_inspectors_share_the_draft_and_each_value_records_who(app: App) -> None:
    ivan = await open_building(app, user_id=1001, name="Иван")
    rows = await slots(app)
    await ivan.ask(plausible(rows[0]), until="Прибор 2 из")

    petr = await open_building(app, user_id=1002, name="Пётр")
    card = card_text(petr)
    assert "заполнено 1" in card and "Прибор 2 из" in card, "Пётр continues Иван's draft"
    await petr.ask(plausible(rows[1]), until="Прибор 3 из")
    await petr.ask(plausible(rows[2]), until="Прибор 4 из")

    after = await slots(app)
    assert [r.entered_by for r in after[:3]] == [1001, 1002, 1002]
    assert all(r.entered_at is not None for r in after[:3])
    async with app.session_pool() as session:
        linked = (await session.execute(select(TelegramUser.account_id))).scalars().all()
    assert len(linked) == 2 and len(set(linked)) == 1, "both are linked to the one account"

    # Иван comes back to the building and sees Пётр's values counted.
    await ivan.tap("В меню", until="Главное меню")
    await choose_building(ivan)
    card = (await ivan.wait_for("Введите показание")).text
    assert "заполнено 3" in card and "Прибор 4 из" in card


@pytest.mark.parametrize("fsm_stored", [False, True], ids=["fsm-before", "fsm-after"])
async def test_a_value_whose_done_mark_was_lost_is_not_entered_twice_after_a_restart(
    fake_telegram: FakeTelegram, bot_token: str, tmp_path: Path, fsm_stored: bool
) -> None:
    """The value is committed before the answer; the FSM's new position and the done
    mark come after it, together. A crash between the two leaves the value stored, the
    old position and the update not done: the next start replays the update, finds the
    slot its message filled and goes on from there (SQLite: the FSM in the database).
    With the new position already stored (fsm-after) the replay must not put the value
    into the next slot either."""
    settings = make_settings(tmp_path, fake_telegram.api_url, bot_token)
    async with running_app(fake_telegram, settings) as app:
        phone = await open_building(app)
        first, second = (await slots(app))[:2]
        assert await app.runner.drain(10)  # the card's update done, its FSM stored
        async with app.engine.connect() as conn:
            before = (await conn.execute(text("SELECT key, state, data FROM fsm_records"))).all()
        await phone.ask(plausible(first), until="Прибор 2 из")
    # What the crash would have left: the value's update not done, the FSM as before it.
    engine = create_engine(settings.DATABASE_URL)
    async with engine.begin() as conn:
        for key, state, data in [] if fsm_stored else before:
            await conn.execute(
                text("UPDATE fsm_records SET state = :s, data = :d WHERE key = :k"),
                {"s": state, "d": data, "k": key},
            )
        await conn.execute(
            text(
                "UPDATE inbox_updates SET done_at = NULL, claimed_until = NULL "
                "WHERE update_id = (SELECT max(update_id) FROM inbox_updates)"
            )
        )
    await engine.dispose()
    since = phone.mark()
    async with running_app(fake_telegram, settings) as app:
        await phone.wait_for("Прибор 2 из", since=since)
        # The first value's line stays in the chat, as without the crash.
        done = [m.text for m in phone.bot_messages() if m.text.startswith("✅")]
        assert len(done) == 1 and plausible(first) in done[0]
        await phone.ask(plausible(second), until="Прибор 3 из")
        rows = await slots(app)
    assert rows[0].value == plausible(first) and rows[0].status == SlotStatus.FILLED
    assert rows[1].value == plausible(second) and rows[1].status == SlotStatus.FILLED
    assert rows[2].status == SlotStatus.EMPTY


async def test_the_next_card_does_not_wait_for_the_old_card_to_become_a_line(app: App) -> None:
    # Each Bot API call is a round trip to Telegram: the new card goes out together
    # with the old card's edit, so the answer comes one round trip sooner.
    phone = await open_building(app)
    first = (await slots(app))[0]
    app.tg.faults.method("editMessageText").delay = 3.0
    await phone.send(plausible(first))
    await phone.wait_for("Прибор 2 из", timeout=2.0)  # the edit is still being answered
    app.tg.faults.reset()
    await phone.wait_screen(lambda _screen: len(live_cards(phone)) == 1)
    assert "Прибор 2 из" in live_cards(phone)[0].text
    (line,) = [m for m in phone.bot_messages() if m.text.startswith("✅ кв. ")]
    assert not line.buttons
    assert bold_parts(line) == [line.text.rsplit(": ", 1)[1]], "the value stands out"
