"""What the inspector types for a slot: every refused value, digits of other scripts,
and edits of a message that carried a value."""

from __future__ import annotations

import pytest

import texts
from storage.models import SlotStatus
from tests.conftest import App
from tests.flows.walking import live_cards, open_building, plausible, slots

# The demo building's first slot: apartment 1, «день», 6 digits and 1 after the comma.
RULE = "Можно: не больше 6 цифр до запятой и 1 после."


@pytest.mark.parametrize(
    ("typed", "answer"),
    [
        ("1234567", "Слишком много цифр до запятой."),
        ("12345,67", "Слишком много цифр после запятой."),
        ("12,3.4", "В показании может быть только одна запятая."),
        ("1.2.3", "В показании может быть только одна запятая."),
        ("12a45", "Показание — это только цифры."),
        ("двенадцать", "Показание — это только цифры."),
        ("-28835", "Показание не может быть отрицательным."),
        ("\u200b", "Пустое значение."),
        (",5", "Перед запятой нужны цифры."),
        ("28835,", "После запятой нужны цифры."),
        ("1" * 4000, "Слишком длинное сообщение для показания."),
    ],
)
async def test_a_refused_value_says_what_is_allowed_and_keeps_the_slot(
    app: App, typed: str, answer: str
) -> None:
    phone = await open_building(app)
    reply = await phone.ask(typed, until="❌")
    assert f"❌ {answer} {RULE}" in reply.text
    assert "Прибор 1 из" in reply.text and "Введите показание" in reply.text
    assert (await slots(app))[0].status == SlotStatus.EMPTY
    # The flow goes on: a good value is taken at once.
    await phone.ask(plausible((await slots(app))[0]), until="Прибор 2 из")


async def test_a_fraction_on_a_whole_number_meter_is_refused(app: App) -> None:
    phone = await open_building(app)
    rows = await slots(app)
    whole = next(r for r in rows if r.fraction_digits == 0)
    await phone.tap("К квартире №…", until="Напишите номер квартиры")
    await phone.ask(whole.apartment, until=f"Квартира: {whole.apartment}")
    reply = await phone.ask(f"{plausible(whole)},5", until="❌")
    assert "У этого прибора нет дробной части." in reply.text
    assert f"не больше {whole.digits} цифр до запятой, без дробной части" in reply.text


async def test_digits_of_other_scripts_are_stored_as_ascii(app: App) -> None:
    phone = await open_building(app)
    rows = await slots(app)
    assert rows[0].previous_value == "028834.8" and rows[1].previous_value == "017062.7"
    # Arabic-Indic digits and the Arabic decimal separator, as an Arabic keyboard types.
    await phone.ask("٠٢٨٨٣٥٫٢", until="Прибор 2 из")
    # Full-width digits (a Japanese or Chinese keyboard) with a full-width comma.
    await phone.ask("１７０６３，１", until="Прибор 3 из")
    # Digit grouping with a no-break space.
    await phone.ask("54\u00a0912,00", until="Прибор 4 из")
    stored = [r.value for r in (await slots(app))[:3]]
    assert stored == ["028835.2", "17063.1", "54912.00"]
    assert all(value is not None and value.isascii() for value in stored)
    shown = " ".join(m.text for m in phone.bot_messages())
    assert "028835.2" in shown and "٢" not in shown.replace("٠٢٨٨٣٥٫٢", "")


async def test_an_edit_of_a_typed_value_corrects_that_slot(app: App) -> None:
    phone = await open_building(app)
    rows = await slots(app)
    typed = await phone.send(plausible(rows[0]))
    await phone.wait_for("Прибор 2 из")
    await phone.ask(plausible(rows[1]), until="Прибор 3 из")

    corrected = plausible(rows[0], above=3)
    await phone.edit(typed, corrected)
    reply = await phone.wait_for("Исправлено")
    assert f"✏️ Исправлено: кв. 1, № {rows[0].serial_number}, день → {corrected}" in reply.text
    after = await slots(app)
    assert after[0].value == corrected and after[1].value == plausible(rows[1])
    live = live_cards(phone)
    assert len(live) == 1 and "Прибор 3 из" in live[0].text, "the walk stays where it was"


async def test_an_edit_to_a_bad_value_is_refused_and_changes_nothing(app: App) -> None:
    phone = await open_building(app)
    rows = await slots(app)
    value = plausible(rows[0])
    typed = await phone.send(value)
    await phone.wait_for("Прибор 2 из")

    await phone.edit(typed, "12a")
    reply = await phone.wait_for("Правка не принята")
    assert "Показание — это только цифры." in reply.text
    await phone.edit(typed, plausible(rows[0], above=-100))
    reply = await phone.wait_for("Правка не применена")
    assert "меньше предыдущего" in reply.text
    assert (await slots(app))[0].value == value


async def test_an_edit_of_a_message_that_was_no_value_is_answered(app: App) -> None:
    phone = await open_building(app)
    query = next(m for m in phone.screen().messages if not m.from_bot and "авиа" in m.text)
    await phone.edit(query.message_id, "12345")
    reply = await phone.wait_for("не было принято как показание")
    assert reply.text == texts.EDIT_NOT_A_READING
    assert all(r.status == SlotStatus.EMPTY for r in await slots(app))


async def test_an_edit_of_a_refused_value_is_not_told_it_was_no_reading(app: App) -> None:
    phone = await open_building(app)
    await phone.ask("1330S", until="❌")
    typed = next(m for m in phone.screen().messages if not m.from_bot and m.text == "1330S")
    await phone.edit(typed.message_id, "13305")
    reply = await phone.wait_for("не было принято как показание")
    assert reply.text == texts.EDIT_NOT_A_READING
    assert "не было показанием" not in reply.text  # it was one, only refused
    assert (await slots(app))[0].status == SlotStatus.EMPTY
