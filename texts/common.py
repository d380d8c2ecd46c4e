"""Texts shared by every flow: menu, commands, help, errors."""

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
# A button's toast, and a command in a group chat (where /menu means nothing).
UNEXPECTED_ERROR_SHORT = "Что-то пошло не так. Попробуйте ещё раз."
UNKNOWN_COMMAND = "Такой команды нет. /menu — главное меню, /help — помощь."
USE_MENU = "Выберите действие в меню."
NOT_LINKED = "Сначала войдите в учётную запись: /start"
NOT_LINKED_SHORT = "Сначала войдите: /start"
BILLING_NOT_ANSWERING = "Личный кабинет энергосбыта сейчас не отвечает. Попробуйте чуть позже."
# No usable stored password (erased by the last user's /logout, stored with a key SECRET_KEY
# no longer has, or refused by billing): only a new login helps.
ACCOUNT_NOT_CONNECTED = (
    "Бот не может войти в личный кабинет компании: администратор должен войти заново (/start)."
)
