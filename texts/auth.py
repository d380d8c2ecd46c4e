"""Texts of linking a Telegram user to the account: login, password, logout."""

from texts.common import MAIN_MENU

__all__ = [
    "ASK_LOGIN_AGAIN",
    "ASK_PASSWORD",
    "INVITE_ACCEPTED_BEFORE_RESTART",
    "INVITE_LOST_IN_RESTART",
    "LOGGED_IN",
    "LOGGED_OUT",
    "LOGIN_BILLING_UNAVAILABLE",
    "LOGIN_EXPECTED_AS_TEXT",
    "LOGIN_FORGOTTEN",
    "LOGIN_GREETING",
    "LOGIN_INVALID",
    "LOGIN_INVALID_LAST",
    "LOGIN_LOST_IN_RESTART",
    "LOGIN_THROTTLED",
    "LOGIN_TOO_LONG",
    "MESSAGE_LOST_IN_RESTART",
    "NOT_LOGGED_IN",
    "PASSWORD_EXPECTED_AS_TEXT",
    "PASSWORD_LOST_IN_RESTART",
    "PASSWORD_TOO_LONG",
    "SENT_BEFORE_LOGIN_REFUSED",
    "WELCOME_BACK",
]

LOGIN_GREETING = (
    "Здравствуйте! Я принимаю показания электросчётчиков по дому.\n\n"
    "Чтобы начать, войдите в личный кабинет юридического лица.\n"
    "Введите <b>логин</b>:"
)
ASK_PASSWORD = (
    "Теперь введите <b>пароль</b>.\nСообщение с паролем я сразу удалю из чата.\n\n"
    "/cancel — отменить вход."
)
ASK_LOGIN_AGAIN = "Введите <b>логин</b>:"
LOGIN_FORGOTTEN = "Начнём вход сначала. Введите <b>логин</b>:"

LOGIN_EXPECTED_AS_TEXT = (
    "Жду логин обычным текстом. Это сообщение я удалил на всякий случай. /cancel — отменить вход."
)
PASSWORD_EXPECTED_AS_TEXT = (
    "Жду пароль обычным текстом. Это сообщение я удалил на всякий случай. /cancel — отменить вход."
)
LOGIN_TOO_LONG = (
    "Логин слишком длинный: не больше {limit} символов. Это сообщение я удалил на всякий случай. "
    "Введите логин ещё раз:"
)
# A text that came after a refused login but before the refusal was shown.
SENT_BEFORE_LOGIN_REFUSED = (
    "Сообщение, отправленное до моего ответа, я удалил: в нём мог быть пароль."
)
PASSWORD_TOO_LONG = "Пароль слишком длинный: не больше {limit} символов. Введите пароль ещё раз:"

LOGGED_IN = "Вы вошли как <b>{company}</b>.\n\n" + MAIN_MENU
WELCOME_BACK = "Здравствуйте! Вы вошли как <b>{company}</b>.\n\n" + MAIN_MENU

LOGIN_INVALID = (
    "Неверный логин или пароль. Осталось попыток: {attempts_left}.\n\nВведите <b>логин</b> ещё раз:"
)
LOGIN_INVALID_LAST = (
    "Неверный логин или пароль. Попытки закончились: попробуйте через {minutes} мин."
)
LOGIN_THROTTLED = "Слишком много попыток входа. Попробуйте через {minutes} мин."
LOGIN_BILLING_UNAVAILABLE = (
    "Личный кабинет энергосбыта сейчас не отвечает, поэтому войти не получилось. "
    "Попробуйте через несколько минут: просто пришлите пароль ещё раз."
)

LOGGED_OUT = "Вы вышли из учётной записи. Чтобы войти снова, нажмите /start."
NOT_LOGGED_IN = "Вы и так не вошли. Чтобы войти, нажмите /start."

# A message that may hold a password is never kept on disk; a restart in between loses it.
PASSWORD_LOST_IN_RESTART = (
    "Бот перезапускался, и ваше сообщение с паролем не успело обработаться "
    "(я его удалил). Введите <b>пароль</b> ещё раз:"
)
LOGIN_LOST_IN_RESTART = (
    "Бот перезапускался, и ваше сообщение не успело обработаться. Введите <b>логин</b> ещё раз:"
)
INVITE_ACCEPTED_BEFORE_RESTART = (
    "Бот перезапускался. Приглашение уже принято: вы в команде. Главное меню — /menu"
)
INVITE_LOST_IN_RESTART = (
    "Бот перезапускался, и приглашение не успело обработаться. Откройте ссылку-приглашение ещё раз."
)
MESSAGE_LOST_IN_RESTART = (
    "Бот перезапускался, и ваше сообщение не успело обработаться. Отправьте его ещё раз "
    "или нажмите /start."
)
