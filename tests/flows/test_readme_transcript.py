"""The transcript in README.md («What the inspector sees»), replayed: if the bot's
words drift, this fails and the README is to be updated with them."""

from __future__ import annotations

from tests.conftest import App
from tests.flows.walking import phone_of


async def test_the_readme_transcript_is_what_the_bot_says(app: App) -> None:
    phone = phone_of(app)
    await phone.send_command("/start")
    assert (await phone.wait_for("логин")).text.endswith("Введите логин:")
    await phone.ask("demo", until="Теперь введите пароль.")
    welcome = await phone.ask("demo", until="Вы вошли")
    assert welcome.text == "Вы вошли как ООО «УК Демо-Сибирь».\n\nГлавное меню. Что делаем?"
    assert welcome.button_labels == [
        "Передача показаний по дому",
        "Просмотр показаний приборов",
        "Настройки",
    ]
    await phone.tap("Передача показаний по дому", until="например «Авиастроителей 0/0»")
    listing = phone.last_bot_message()
    assert listing is not None and listing.buttons[-1] == ("1 / 2", "След. ›")
    assert len(listing.buttons) == 9
    found = await phone.ask("авиастраителей 3", until="Нашлось")
    assert found.text == "Нашлось по запросу «авиастраителей 3»: 1. Выберите дом."
    assert found.button_labels == ["Авиастроителей ул., 3", "Весь список домов"]
    card = (await phone.tap("Авиастроителей ул., 3", until="Введите показание")).messages
    assert card
    shown = phone.last_bot_message()
    assert shown is not None and shown.text == (
        "🏠 Новосибирск, Авиастроителей ул., 3\n89 квартир, 128 приборов, заполнено 0\n\n"
        "Квартира: 1\nЗав. номер: 4477876804\nЗначность: 6 (+1 после запятой)\n"
        "Тариф: день\nПрибор 1 из 128\n\nВведите показание:"
    )
    await phone.ask("28835,4", until="Прибор 2 из 128")
    assert any(m.text == "✅ кв. 1, № 4477876804, день: 28835.4" for m in phone.bot_messages())
    refused = await phone.ask("1234567", until="❌")
    assert (
        "❌ Слишком много цифр до запятой. Можно: не больше 6 цифр до запятой и 1 после."
        in refused.text
    )
    warning = await phone.ask("5491", until="меньше предыдущего")
    assert warning.text == (
        "⚠️ Показание 5491 меньше предыдущего (017062.7) на 11571.7.\n"
        "Это опечатка, заменённый прибор или счётчик прошёл через ноль?\n"
        "Оставить это значение или ввести заново?"
    )
    assert warning.button_labels == ["Оставить 5491", "Исправить"]
    await phone.tap("Исправить", until="Введите показание")
    await phone.ask("17063", until="Прибор 3 из 128")
    await phone.tap("Пропустить", until="Почему пропускаем?")
    await phone.tap("Нет доступа", until="Прибор 4 из 128")
    texts = [m.text for m in phone.bot_messages()]
    assert "✅ кв. 1, № 4477876804, ночь: 17063" in texts
    assert "⏭ кв. 2, № 247513627010, пик: пропущено — Нет доступа" in texts
    await phone.tap("Отправить", until="Не все поля заполнены. Вернуться к заполнению?")
    await phone.tap("Отправить", until="📨 Отправлено: 2. Принято: 2.")
    await phone.wait_for("Главное меню. Что делаем?")
