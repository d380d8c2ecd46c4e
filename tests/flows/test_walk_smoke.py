"""Smoke: the inspector links the demo account, chooses a building, enters and sends."""

from __future__ import annotations

from tests.conftest import App


async def test_demo_inspector_sends_first_reading(app: App) -> None:
    phone = app.tg.user(user_id=1001, first_name="Иван", username="ivan")
    await phone.send_command("/start")
    await phone.wait_for("логин")
    await phone.ask("demo", until="пароль")
    reply = await phone.ask("demo", until="Вы вошли")
    assert "Главное меню" in reply.text
    await phone.tap("Передача показаний по дому", until="Выберите дом")
    card = await phone.ask("авиастраителей", until="Нашлось")
    first = card.buttons[0][0]
    await phone.tap(first, until="Квартира")
    card = phone.last_bot_message()
    assert card is not None and "Введите показание" in card.text, phone.screen()
    print(card.text)
    reply = await phone.ask("abc", until="Показание — это только цифры")
    print(reply.text)
