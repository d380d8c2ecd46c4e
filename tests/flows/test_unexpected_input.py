"""Whatever else an inspector may send or press mid-flow: a short Russian answer, the
flow goes on, and nothing typed breaks the bot's HTML."""

from __future__ import annotations

from aiogram.fsm.storage.base import StorageKey

import texts
from handlers.readings import Walk
from storage.models import SlotStatus
from tests.conftest import App
from tests.flows.walking import (
    card_text,
    live_cards,
    log_in,
    open_building,
    phone_of,
    plausible,
    shows,
    slots,
)
from tests.harness.phone import Phone

EXPECTING_NUMBER = "Я жду показание прибора — напишите его цифрами, например 13305."


async def goes_on(app: App, phone: Phone, number: int = 1) -> None:
    """The card still waits for slot `number`, and takes a value for it."""
    assert f"Прибор {number} из" in live_cards(phone)[-1].text
    row = (await slots(app))[number - 1]
    await phone.ask(plausible(row), until=f"Прибор {number + 1} из")
    assert (await slots(app))[number - 1].status == SlotStatus.FILLED


async def test_sticker_photo_voice_where_a_value_is_expected(app: App) -> None:
    phone = await open_building(app)
    for send in (phone.send_sticker, phone.send_photo, phone.send_voice):
        await send()
        reply = await phone.wait_for()
        assert reply.text == EXPECTING_NUMBER
    await phone.send_photo(b"\x89PNG-fake", caption="28835")
    assert (await phone.wait_for()).text == EXPECTING_NUMBER
    await phone.send_location(55.03, 82.92)
    assert (await phone.wait_for()).text == EXPECTING_NUMBER
    assert all(r.status == SlotStatus.EMPTY for r in await slots(app))
    await goes_on(app, phone)


async def test_a_sticker_at_the_apartment_prompt_asks_for_the_apartment_not_a_value(
    app: App,
) -> None:
    phone = await open_building(app)
    await phone.tap("К квартире №…", until="Напишите номер квартиры")
    await phone.send_sticker()
    reply = await phone.wait_for()
    assert reply.text == "Я жду номер квартиры — напишите его текстом, например «12а» или «НП-1»."
    await phone.ask("5", until="Квартира: 5")


async def test_a_forwarded_number_is_not_taken_as_a_reading(app: App) -> None:
    phone = await open_building(app)
    neighbour = phone_of(app, user_id=2002, name="Сосед")
    await phone.forward("28835", from_user=neighbour)
    reply = await phone.wait_for()
    assert reply.text == "Пересланные сообщения не принимаются как показания. Напишите число сами."
    await phone.forward("28835", from_user="Скрытый")
    assert "Пересланные" in (await phone.wait_for()).text
    assert (await slots(app))[0].status == SlotStatus.EMPTY
    await goes_on(app, phone)


async def test_help_and_an_unknown_command_mid_walk_keep_the_walk(app: App) -> None:
    phone = await open_building(app)
    await phone.send_command("/help")
    help_text = await phone.wait_for("Как передать показания")
    assert "/menu — главное меню" in help_text.text
    await phone.send_command("/frobnicate")
    reply = await phone.wait_for()
    assert reply.text == "Такой команды нет. /menu — главное меню, /help — помощь."
    await goes_on(app, phone)


async def test_menu_mid_walk_shows_the_menu_and_the_values_stay(app: App) -> None:
    phone = await open_building(app)
    await phone.ask(plausible((await slots(app))[0]), until="Прибор 2 из")
    await phone.send_command("/menu")
    await phone.wait_for(shows("Передача показаний по дому"))
    live = live_cards(phone)
    assert len(live) == 1 and live[0].text == "Главное меню. Что делаем?"
    # A number typed at the menu is no value for any slot.
    reply = await phone.ask("12345", until="Выберите действие в меню.")
    assert reply.button_labels[0] == "Передача показаний по дому"
    assert [r.status for r in (await slots(app))[:2]] == [SlotStatus.FILLED, SlotStatus.EMPTY]


async def test_cancel_mid_walk_ends_it_and_then_there_is_nothing_to_cancel(app: App) -> None:
    phone = await open_building(app)
    await phone.send_command("/cancel")
    cancelled = await phone.wait_for("Действие отменено.")
    assert "Передача показаний по дому" in cancelled.button_labels
    assert len(live_cards(phone)) == 1
    await phone.send_command("/cancel")
    assert (await phone.wait_for()).text == "Отменять нечего."


async def test_a_long_text_and_a_sticker_while_choosing_a_building(app: App) -> None:
    phone = phone_of(app)
    await log_in(phone)
    await phone.tap("Передача показаний по дому", until="Выберите дом")
    await phone.ask("Авиастроителей " * 270, until="Слишком длинный запрос")
    assert len("Авиастроителей " * 270) > 4000
    await phone.wait_for(shows("Авиастроителей ул., 3"))
    await phone.send_sticker()
    reply = await phone.wait_for()
    assert reply.text == "Напишите улицу и номер дома текстом или выберите дом кнопкой."
    found = await phone.ask("авиастроителей 3", until="Нашлось")
    await phone.tap(found.buttons[0][0], until="Введите показание")


async def test_html_in_what_the_inspector_types_is_shown_as_typed(app: App) -> None:
    phone = phone_of(app)
    await log_in(phone)
    await phone.tap("Передача показаний по дому", until="Выберите дом")
    query = "<b>Ленина</b> & <script>alert(1)</script>"
    reply = await phone.ask(query, until="ничего не нашлось")
    assert f"По запросу «{query}» ничего не нашлось." in reply.text
    found = await phone.ask("авиастроителей", until="Нашлось")
    await phone.tap(found.buttons[0][0], until="Введите показание")

    await phone.tap("К квартире №…", until="Напишите номер квартиры")
    reply = await phone.ask("<i>1</i>&amp;", until="в этом доме нет")
    assert "Квартиры «<i>1</i>&amp;» в этом доме нет." in reply.text
    await phone.tap("Вернуться", until="Введите показание")
    reply = await phone.ask("<b>12</b>", until="❌")
    assert "Показание — это только цифры." in reply.text
    assert not app.tg.errors(), "every message the bot sent was valid HTML"


async def test_an_old_button_answers_it_is_out_of_date_and_shows_the_current_card(
    app: App,
) -> None:
    phone = await open_building(app)
    old_card = live_cards(phone)[0]
    old_skip = old_card.button_data("Пропустить")
    await phone.ask(plausible((await slots(app))[0]), until="Прибор 2 из")

    update = await phone.press_data(old_skip, message=old_card.message_id)
    reaction = await phone.wait_for_answer_to(update)
    assert reaction.answer is not None
    assert reaction.answer.get("text") == "Эта кнопка устарела — вот актуальная карточка."
    card = await phone.wait_for("Прибор 2 из")
    assert "Введите показание" in card.text
    assert [r.status for r in (await slots(app))[:2]] == [SlotStatus.FILLED, SlotStatus.EMPTY]
    assert len(live_cards(phone)) == 1

    # After /menu the walk is over: its old buttons lead to the menu, not to a slot.
    current_skip = live_cards(phone)[0].button_data("Пропустить")
    card_id = live_cards(phone)[0].message_id
    await phone.send_command("/menu")
    await phone.wait_for(shows("Передача показаний по дому"))
    update = await phone.press_data(current_skip, message=card_id)
    reaction = await phone.wait_for_answer_to(update)
    assert reaction.answer is not None and "устарела" in str(reaction.answer.get("text"))
    await phone.wait_for("Главное меню")
    assert (await slots(app))[1].status == SlotStatus.EMPTY
    assert "Главное меню" in card_text(phone)


async def test_a_value_or_apartment_with_the_walks_data_gone_gets_the_menu(app: App) -> None:
    # The chat's state says «entering a value» but its data lost the draft (an FSM
    # row from an old version, a damaged one): the menu, never the generic error.
    phone = await open_building(app)
    key = StorageKey(bot_id=app.bot.id, chat_id=1001, user_id=1001)
    for state in (Walk.entering_value, Walk.entering_apartment):
        # The previous update's own FSM writes must be over first (with the SQL storage
        # they come with its done mark; with Redis, after the card is on the screen).
        assert await app.runner.drain(10.0)
        await app.dispatcher.storage.set_state(key, state)
        await app.dispatcher.storage.set_data(key, {"position": 3})
        reply = await phone.ask("12345", until=texts.MAIN_MENU)
        assert texts.MENU_SEND in reply.button_labels
        assert await app.runner.drain(10.0)  # its FSM change comes with its done mark
        assert await app.dispatcher.storage.get_state(key) is None  # the menu, not a walk
    await app.tg.wait_quiet()
    assert not any(texts.UNEXPECTED_ERROR in m.text for m in phone.bot_messages())
    assert all(row.status == SlotStatus.EMPTY for row in await slots(app))
