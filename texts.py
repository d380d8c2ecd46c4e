"""Every text the bot shows a user: one catalogue, Russian.

A wording change or another language touches this file only. Texts are HTML
(the bot's parse mode); anything that comes from a user or from billing is
escaped with `esc` before it is put into a text.
"""

from __future__ import annotations

from html import escape


def esc(value: object) -> str:
    """Escape a value for Telegram HTML."""
    return escape(str(value), quote=False)


# --- menu and commands -------------------------------------------------------

MENU_SEND = "Передача показаний по дому"
MENU_VIEW = "Просмотр показаний приборов"
MENU_SETTINGS = "Настройки"

COMMANDS = {
    "start": "Начать / войти",
    "menu": "Главное меню",
    "help": "Как пользоваться ботом",
    "cancel": "Отменить текущее действие",
    "logout": "Выйти из учётной записи",
}

GREETING_UNLINKED = (
    "Здравствуйте! Я принимаю показания электросчётчиков по дому.\n\n"
    "Чтобы начать, войдите в личный кабинет юридического лица."
)
MAIN_MENU = "Главное меню. Что делаем?"
HELP = (
    "<b>Как передать показания</b>\n"
    "1. «Передача показаний по дому» → выберите дом из списка или напишите улицу и номер дома.\n"
    "2. Вводите показание каждого прибора: бот сам переходит к следующему.\n"
    "3. «Пропустить» — если показание снять нельзя (укажите причину).\n"
    "4. «Отправить» — передать показания в энергосбыт.\n\n"
    "Всё введённое сохраняется сразу: можно прерваться и продолжить позже.\n\n"
    "/menu — главное меню, /cancel — отменить действие, /logout — выйти."
)
CANCELLED = "Действие отменено."
NOTHING_TO_CANCEL = "Отменять нечего."
UNEXPECTED_ERROR = (
    "Что-то пошло не так, но введённые данные сохранены. Попробуйте ещё раз или нажмите /menu."
)
