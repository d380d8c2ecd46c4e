"""The question «Не все поля заполнены», the review card and the edges around them:
typing at the question, double taps, the review's wording, billing down at opening."""

from __future__ import annotations

from typing import NoReturn

import pytest

import texts
from billing_client.errors import BillingUnavailable
from services.walk import Progress
from storage.models import SlotStatus
from tests.conftest import App
from tests.flows.walking import (
    BUILDING_QUERY,
    fill_last_apartment,
    live_cards,
    log_in,
    open_building,
    phone_of,
    plausible,
    slots,
)


async def test_a_value_typed_at_not_all_filled_goes_to_the_card_slot_and_the_walk_goes_on(
    app: App,
) -> None:
    """It used to fall through to the main menu: the value lost, the walk gone."""
    phone = await open_building(app)
    first = (await slots(app))[0]
    await phone.tap("Отправить", until="Не все поля заполнены")
    await phone.ask(plausible(first), until="Прибор 2 из")
    assert (await slots(app))[0].value == plausible(first)
    assert any(m.text.startswith("✅") and plausible(first) in m.text for m in phone.bot_messages())
    assert not any(m.text == "Выберите действие в меню." for m in phone.bot_messages())
    live = live_cards(phone)
    assert len(live) == 1 and "Прибор 2 из" in live[0].text


async def test_a_value_typed_at_the_review_past_the_end_is_answered_and_the_review_stays(
    app: App,
) -> None:
    phone = await open_building(app)
    rows = await slots(app)
    last = await fill_last_apartment(phone, rows)
    review = live_cards(phone)
    assert len(review) == 1 and "Ждут отправки" in review[0].text
    reply = await phone.ask("12345", until="не записано")
    assert "«Вернуться к заполнению»" in reply.text
    assert live_cards(phone) == review, "the review is still the live card"
    assert not any(m.text == "Выберите действие в меню." for m in phone.bot_messages())
    assert all(r.value != "12345" for r in await slots(app))
    assert sum(r.status == SlotStatus.FILLED for r in await slots(app)) == sum(
        r.apartment == last.apartment for r in rows
    )


async def test_a_double_tap_of_send_keeps_the_question(app: App) -> None:
    """The second tap used to be «stale»: the question deleted, the old card back."""
    phone = await open_building(app)
    card = live_cards(phone)[0]
    first = await phone.press("Отправить", message=card.message_id)
    second = await phone.press("Отправить", message=card.message_id)
    await phone.wait_for_answer_to(first)
    answer = (await phone.wait_for_answer_to(second)).answer
    assert answer is not None and not answer.get("text"), "no «button is stale» toast"
    # A message after the taps: its answer comes after anything the taps did.
    await phone.send_command("/help")
    await phone.wait_for("Как передать показания")
    live = live_cards(phone)
    assert [m.text for m in live] == ["Не все поля заполнены. Вернуться к заполнению?"]
    assert live[0].message_id == card.message_id


async def test_a_late_press_of_an_old_card_shows_the_question_again(app: App) -> None:
    phone = await open_building(app)
    rows = await slots(app)
    old = live_cards(phone)[0]
    old_send = old.button_data("Отправить")
    await phone.ask(plausible(rows[0]), until="Прибор 2 из")
    await phone.tap("Отправить", until="Не все поля заполнены")
    late = await phone.press_data(old_send, message=old.message_id)
    reaction = await phone.wait_for_answer_to(late)
    assert reaction.answer is not None
    assert reaction.answer.get("text") == "Эта кнопка устарела — вот актуальная карточка."
    again = await phone.wait_for("Не все поля заполнены")
    assert [m.message_id for m in live_cards(phone)] == [again.message_id]
    await phone.tap("Вернуться", until="Прибор 2 из")


async def test_billing_down_with_no_saved_draft_turns_the_list_into_the_menu(app: App) -> None:
    """The list used to stay live next to a new menu (the FSM lost its id first)."""
    phone = phone_of(app)
    await log_in(phone)
    await phone.tap("Передача показаний по дому", until="Выберите")
    found = await phone.ask(BUILDING_QUERY, until="Нашлось")

    async def down(*args: object, **kwargs: object) -> NoReturn:
        raise BillingUnavailable("down")

    app.dispatcher["billing"].meters = down
    await phone.tap(found.buttons[0][0], message=found.message_id, until="не отвечает")
    live = live_cards(phone)
    assert len(live) == 1 and live[0].message_id == found.message_id
    assert "список приборов этого дома ещё не загружался" in live[0].text
    assert "Передача показаний по дому" in live[0].button_labels


async def test_a_double_tap_of_a_building_leaves_one_live_card(app: App) -> None:
    """The second tap used to open the building again: two live cards of one slot."""
    phone = phone_of(app)
    await log_in(phone)
    await phone.tap("Передача показаний по дому", until="Выберите")
    found = await phone.ask(BUILDING_QUERY, until="Нашлось")
    first = await phone.press(found.buttons[0][0], message=found.message_id)
    second = await phone.press(found.buttons[0][0], message=found.message_id)
    await phone.wait_for_answer_to(first)
    answer = (await phone.wait_for_answer_to(second)).answer
    assert answer is not None and not answer.get("text")
    # A message after the taps: its answer comes after anything the taps did.
    await phone.send_command("/help")
    await phone.wait_for("Как передать показания")
    cards = [m for m in phone.bot_messages() if "Прибор 1 из" in m.text]
    assert len(cards) == 1 and live_cards(phone) == cards
    await phone.ask(plausible((await slots(app))[0]), until="Прибор 2 из")
    assert len(live_cards(phone)) == 1


async def test_two_buildings_tapped_at_once_leave_one_live_card(app: App) -> None:
    phone = phone_of(app)
    await log_in(phone)
    listed = (await phone.tap("Передача показаний по дому", until="Выберите")).messages[-1]
    first = await phone.press(listed.buttons[0][0], message=listed.message_id)
    second = await phone.press(listed.buttons[1][0], message=listed.message_id)
    await phone.wait_for_answer_to(first)
    await phone.wait_for_answer_to(second)
    await phone.send_command("/help")
    await phone.wait_for("Как передать показания")
    live = live_cards(phone)
    assert len(live) == 1 and "Прибор 1 из" in live[0].text
    assert sum("Прибор 1 из" in m.text for m in phone.bot_messages()) == 2


async def test_the_review_says_all_meters_are_done_only_when_they_are(app: App) -> None:
    """It used to say «Все приборы пройдены.» over «Не заполнено: 128»."""
    phone = await open_building(app)
    await phone.tap("Отправить", until="Не все поля заполнены")
    review = (await phone.tap("Отправить", until="Нечего отправлять")).messages[-1].text
    assert "Все приборы пройдены" not in review
    assert "Остались незаполненные приборы." in review and "Не заполнено: 128" in review


async def test_the_review_counts_filled_and_skipped_apart_without_a_contradicting_header(
    app: App,
) -> None:
    """Its header said «заполнено 2» (skipped included) over «Заполнено: 1»."""
    phone = await open_building(app)
    rows = await slots(app)
    await phone.ask(plausible(rows[0]), until="Прибор 2 из")
    await phone.tap("Пропустить", until="Почему пропускаем?")
    await phone.tap("Нет доступа", until="Прибор 3 из")
    last = await fill_last_apartment(phone, rows)
    review = live_cards(phone)[0].text
    filled = 1 + sum(r.apartment == last.apartment for r in rows)
    assert f"Заполнено: {filled}\nПропущено: 1\nНе заполнено: {len(rows) - filled - 1}" in review
    assert "заполнено " not in review.replace("Не заполнено", ""), "one «заполнено» only"
    assert "Остались незаполненные приборы." in review


@pytest.mark.parametrize(
    ("apartments", "meters", "shown"),
    [
        (131, 151, "131 квартира, 151 прибор, заполнено 0"),
        (84, 128, "84 квартиры, 128 приборов, заполнено 0"),
        (11, 12, "11 квартир, 12 приборов, заполнено 0"),
        (22, 104, "22 квартиры, 104 прибора, заполнено 0"),
        (215, 300, "215 квартир, 300 приборов, заполнено 0"),
    ],
)
def test_the_header_agrees_its_counts_with_their_nouns(
    apartments: int, meters: int, shown: str
) -> None:
    """It used to say «131 квартир, 151 приборов»."""
    progress = Progress(1, "b", "Адрес", "2026-11", apartments, meters, 0, 0, meters, 0, 0, 0)
    assert texts.header(progress).endswith("\n" + shown)


async def test_a_sticker_or_photo_at_the_review_is_answered_and_the_review_stays(
    app: App,
) -> None:
    """It fell through to the menu fallback, which deleted the review card."""
    phone = await open_building(app)
    await fill_last_apartment(phone, await slots(app))
    await phone.send_sticker()
    await phone.wait_for(texts.REVIEW_EXPECTS_BUTTON)
    await phone.send_photo()
    await phone.wait_for(texts.REVIEW_EXPECTS_BUTTON)
    await app.tg.wait_quiet()
    (review,) = live_cards(phone)
    assert "Отправить" in review.button_labels
    await phone.tap("Отправить", until=texts.NOT_ALL_FILLED)
