"""Linking a Telegram user to the account, end to end: the real dispatcher, the fake
Bot API server over HTTP, the embedded billing with its demo account."""

from __future__ import annotations

import re
from functools import partial

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from billing_client.embedded import EmbeddedBilling
from billing_client.errors import BillingUnavailable, TooManyAttempts
from billing_client.models import LoginResult
from storage.models import Account, Role, TelegramUser
from tests.conftest import App
from tests.harness import Phone
from tests.harness.databases import fsm_contents, stored_bytes

DEMO_COMPANY = "ООО «УК Демо-Сибирь»"
# A password and a company nobody else uses: easy to look for in every byte.
CANARY_LOGIN = "tsj-les"
CANARY_PASSWORD = "canary-Pa55-q8Xz"
TRICKY_COMPANY = "ТСЖ <Лесное> & «Ко»"
RETRY_IN = re.compile(r"через (\d+) мин")


def phone_of(app: App, user_id: int = 1001, name: str = "Иван") -> Phone:
    return app.tg.user(user_id=user_id, first_name=name, username=f"user{user_id}")


async def start_login(phone: Phone) -> None:
    await phone.send_command("/start")
    await phone.wait_for("логин")


async def enter_login(phone: Phone, login: str = "demo") -> str:
    return (await phone.ask(login)).text


async def enter_password(phone: Phone, password: str) -> tuple[str, int]:
    """The bot's reply to a password, and the id of the message that carried it."""
    update = await phone.send(password)
    reply = await phone.wait_for()
    return reply.text, int(update["message"]["message_id"])


async def log_in(phone: Phone, login: str = "demo", password: str = "demo") -> str:
    await start_login(phone)
    await phone.ask(login, until="пароль")
    await phone.send(password)
    return (await phone.wait_for("Вы вошли")).text


async def fail_once(phone: Phone, login: str) -> str:
    await phone.ask(login, until="пароль")
    text, _ = await enter_password(phone, "wrong-password")
    return text


def is_deleted(phone: Phone, message_id: int) -> bool:
    return phone.chat.messages[message_id].deleted


async def linked_user(app: App, user_id: int) -> TelegramUser | None:
    async with app.session_pool() as session:
        return await session.get(TelegramUser, user_id)


# --- the happy path ----------------------------------------------------------


async def test_start_asks_the_login_in_one_greeting(app: App) -> None:
    phone = phone_of(app)
    update = await phone.send_command("/start")

    reaction = await phone.wait_for_answer_to(update)

    assert len(reaction.messages) == 1
    assert "Здравствуйте" in reaction.text and "логин" in reaction.text


async def test_login_then_password_links_the_user_and_names_the_company(app: App) -> None:
    phone = phone_of(app)
    await start_login(phone)

    assert "пароль" in await enter_login(phone, "demo")
    reply, password_message = await enter_password(phone, "demo")

    assert f"Вы вошли как {DEMO_COMPANY}" in reply
    assert is_deleted(phone, password_message), phone.screen()
    menu = phone.last_bot_message()
    assert menu is not None
    assert menu.button_labels == [
        "Передача показаний по дому",
        "Просмотр показаний приборов",
        "Настройки",
    ]
    user = await linked_user(app, 1001)
    assert user is not None and user.account_id is not None and user.role == Role.ADMIN


async def test_password_message_is_deleted_before_billing_sees_the_password(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = phone_of(app)
    seen: list[bool] = []
    real_login = app.billing.login

    async def watching_login(login: str, password: SecretStr) -> LoginResult:
        message_id = max(m.message_id for m in phone.chat.messages.values() if not m.from_bot)
        seen.append(is_deleted(phone, message_id))
        return await real_login(login, password)

    monkeypatch.setattr(app.billing, "login", watching_login)
    assert "Вы вошли" in await log_in(phone)
    assert seen == [True]


async def test_login_is_case_and_space_insensitive_like_billing(app: App) -> None:
    assert "Вы вошли" in await log_in(phone_of(app), login="  Demo ")


async def test_linked_user_sending_start_gets_the_menu_with_the_company(app: App) -> None:
    phone = phone_of(app)
    await log_in(phone)

    await phone.send_command("/start")
    reply = await phone.wait_for("Главное меню")

    assert DEMO_COMPANY in reply.text
    assert reply.has_button("Передача показаний по дому")


async def test_company_name_with_html_characters_is_shown_as_is(app: App) -> None:
    billing = app.billing
    assert isinstance(billing, EmbeddedBilling)
    await billing.add_account(CANARY_LOGIN, TRICKY_COMPANY, SecretStr(CANARY_PASSWORD))
    phone = phone_of(app)

    reply = await log_in(phone, CANARY_LOGIN, CANARY_PASSWORD)

    assert f"Вы вошли как {TRICKY_COMPANY}" in reply
    stored = phone.chat.messages[phone.bot_messages()[-1].message_id]
    assert stored.source is not None and "&lt;Лесное&gt; &amp;" in stored.source


async def test_second_user_of_the_account_is_an_inspector(app: App) -> None:
    await log_in(phone_of(app, 1001))
    await log_in(phone_of(app, 1002, "Пётр"))

    first, second = await linked_user(app, 1001), await linked_user(app, 1002)
    assert first is not None and second is not None
    assert (first.role, second.role) == (Role.ADMIN, Role.INSPECTOR)
    assert first.account_id == second.account_id


# --- wrong credentials and the throttle --------------------------------------


async def test_wrong_password_says_so_and_asks_the_login_again(app: App) -> None:
    phone = phone_of(app)
    await start_login(phone)
    await enter_login(phone)

    reply, password_message = await enter_password(phone, "not-the-password")

    assert "Неверный логин или пароль" in reply
    assert "Осталось попыток: 2" in reply
    assert "логин" in reply.split("\n")[-1]
    assert is_deleted(phone, password_message)
    assert "пароль" in await enter_login(phone, "demo")
    reply, _ = await enter_password(phone, "demo")
    assert "Вы вошли" in reply


async def test_third_failure_on_a_login_blocks_it_for_every_user(app: App) -> None:
    guesser = phone_of(app, 2001, "Гость")
    await start_login(guesser)
    replies = [await fail_once(guesser, "demo") for _ in range(3)]

    assert "Осталось попыток: 2" in replies[0]
    assert "Осталось попыток: 1" in replies[1]
    assert "Попытки закончились" in replies[2]
    assert (match := RETRY_IN.search(replies[2])) and 14 <= int(match.group(1)) <= 15

    # The real inspector is stopped at the login step, before typing a password: the
    # company's account must not get a fourth failure through the bot.
    inspector = phone_of(app, 2002, "Инспектор")
    await start_login(inspector)
    reply = await enter_login(inspector, "demo")
    assert "Слишком много попыток входа. Попробуйте через" in reply
    assert (await linked_user(app, 2002)) is None


async def burst(phone: Phone, *texts: str) -> list[int]:
    """Send texts one after another before the bot answers any; their message ids."""
    return [int((await phone.send(text))["message"]["message_id"]) for text in texts]


async def assert_password_kept_nowhere(app: App, password: str) -> None:
    assert await app.runner.drain(10.0)  # every update's writes made, done marks included
    fsm = await fsm_contents(app.settings.DATABASE_URL, app.settings.REDIS_URL)
    assert not [key for key, value in fsm.items() if password in value]
    # The inbox and everything else the bot's database holds, SQLite's WAL included.
    for name, data in (await stored_bytes(app.settings.DATABASE_URL)).items():
        assert password.encode() not in data, name


async def test_password_in_a_burst_after_a_throttled_login_is_deleted_and_kept_nowhere(
    app: App,
) -> None:
    guesser = phone_of(app, 2001, "Гость")
    await start_login(guesser)
    for _ in range(3):
        await fail_once(guesser, "demo")

    # The README's burst: /start, login and password, sent before the bot answers.
    phone = phone_of(app)
    await phone.send_command("/start")
    _, password_message = await burst(phone, "demo", CANARY_PASSWORD)

    assert "Слишком много попыток входа" in (await phone.wait_for("Слишком много")).text
    note = await phone.wait_for("удалил")
    assert "в нём мог быть пароль" in note.text
    assert is_deleted(phone, password_message), phone.screen()
    assert not [m for m in phone.bot_messages() if "Теперь введите" in m.text], phone.screen()
    await assert_password_kept_nowhere(app, CANARY_PASSWORD)
    # Still at the login step: a login typed now is checked again.
    assert "Слишком много попыток входа" in await enter_login(phone)


async def test_fifth_failure_of_a_user_blocks_that_user_on_any_login(app: App) -> None:
    phone = phone_of(app, 3001)
    await start_login(phone)
    replies = [await fail_once(phone, f"guess-{i}") for i in range(5)]

    assert [r.count("Неверный логин или пароль") for r in replies] == [1] * 5
    assert "Осталось попыток: 1" in replies[3]
    assert "Попытки закончились" in replies[4]
    blocked = await enter_login(phone, "demo")
    assert RETRY_IN.search(blocked) and "Слишком много попыток" in blocked

    # The limit is the user's, not the login's: someone else still gets in.
    assert "Вы вошли" in await log_in(phone_of(app, 3002))


async def test_billing_lockout_is_reported_with_its_wait(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def locked(login: str, password: SecretStr) -> LoginResult:
        raise TooManyAttempts(retry_after=300)

    monkeypatch.setattr(app.billing, "login", locked)
    phone = phone_of(app)
    await start_login(phone)
    await enter_login(phone)

    reply, _ = await enter_password(phone, "demo")

    assert "Слишком много попыток входа. Попробуйте через 5 мин." in reply


async def test_billing_outage_keeps_the_login_so_the_password_can_be_sent_again(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_login = app.billing.login

    async def down(login: str, password: SecretStr) -> LoginResult:
        raise BillingUnavailable("timeout")

    monkeypatch.setattr(app.billing, "login", down)
    phone = phone_of(app)
    await start_login(phone)
    await enter_login(phone)

    reply, password_message = await enter_password(phone, "demo")
    assert "не отвечает" in reply
    assert is_deleted(phone, password_message)

    monkeypatch.setattr(app.billing, "login", real_login)
    reply, _ = await enter_password(phone, "demo")
    assert "Вы вошли" in reply


# --- unexpected input --------------------------------------------------------


async def test_media_while_the_login_is_expected_is_deleted_and_the_flow_goes_on(
    app: App,
) -> None:
    phone = phone_of(app)
    await start_login(phone)

    for send in (
        phone.send_sticker,
        phone.send_photo,
        phone.send_voice,
        partial(phone.send_document, "login.txt", b"demo"),
    ):
        update = await send()
        assert "Жду логин обычным текстом" in (await phone.wait_for()).text
        assert is_deleted(phone, int(update["message"]["message_id"])), "may show the password"

    assert "пароль" in await enter_login(phone)


async def test_media_while_the_password_is_expected_is_deleted_and_answered(app: App) -> None:
    phone = phone_of(app)
    await start_login(phone)
    await enter_login(phone)

    update = await phone.send_photo(caption=CANARY_PASSWORD)
    reply = await phone.wait_for()
    assert "Жду пароль обычным текстом" in reply.text
    assert is_deleted(phone, int(update["message"]["message_id"]))

    await phone.send_sticker()
    assert "Жду пароль" in (await phone.wait_for()).text

    reply_text, _ = await enter_password(phone, "demo")
    assert "Вы вошли" in reply_text


async def test_overlong_login_is_refused(app: App) -> None:
    phone = phone_of(app)
    await start_login(phone)

    update = await phone.send("d" * 201)
    reply = (await phone.wait_for()).text

    assert "Логин слишком длинный: не больше 200 символов" in reply
    # No login is that long: a pasted note, which may hold the password as well.
    assert is_deleted(phone, int(update["message"]["message_id"]))
    assert "пароль" in await enter_login(phone)


async def test_password_in_a_burst_after_an_overlong_login_is_deleted_and_kept_nowhere(
    app: App,
) -> None:
    phone = phone_of(app)
    await phone.send_command("/start")
    _, password_message = await burst(phone, "d" * 201, CANARY_PASSWORD)

    await phone.wait_for("Логин слишком длинный")
    await phone.wait_for("в нём мог быть пароль")
    assert is_deleted(phone, password_message)
    await assert_password_kept_nowhere(app, CANARY_PASSWORD)
    assert "пароль" in await enter_login(phone)


async def test_a_wrong_password_sent_twice_is_not_taken_as_the_next_login(app: App) -> None:
    phone = phone_of(app)
    await start_login(phone)
    await enter_login(phone)

    first, second = await burst(phone, CANARY_PASSWORD, CANARY_PASSWORD)

    await phone.wait_for("Неверный логин или пароль")
    await phone.wait_for("в нём мог быть пароль")
    assert is_deleted(phone, first) and is_deleted(phone, second)
    await assert_password_kept_nowhere(app, CANARY_PASSWORD)
    assert "пароль" in await enter_login(phone)


async def test_overlong_password_is_deleted_and_refused(app: App) -> None:
    phone = phone_of(app)
    await start_login(phone)
    await enter_login(phone)

    reply, password_message = await enter_password(phone, "p" * 201)

    assert "Пароль слишком длинный: не больше 200 символов" in reply
    assert is_deleted(phone, password_message)
    reply, _ = await enter_password(phone, "demo")
    assert "Вы вошли" in reply


async def test_cancel_during_the_password_step_forgets_the_login(app: App) -> None:
    phone = phone_of(app)
    await start_login(phone)
    await enter_login(phone)

    await phone.send_command("/cancel")
    assert "Действие отменено" in (await phone.wait_for()).text

    reply = await phone.ask("demo")
    assert "Вы вошли" not in reply.text
    assert (await linked_user(app, 1001)) is None


async def test_help_during_the_login_step_keeps_the_step(app: App) -> None:
    phone = phone_of(app)
    await start_login(phone)

    await phone.send_command("/help")
    assert "Как передать показания" in (await phone.wait_for()).text

    assert "пароль" in await enter_login(phone)


@pytest.mark.parametrize("command", ["/team", "/invite"])
async def test_an_admin_command_at_the_login_step_is_not_taken_as_the_login(
    app: App, command: str
) -> None:
    phone = phone_of(app)
    await start_login(phone)

    await phone.send_command(command)
    reply = (await phone.wait_for()).text
    assert "пароль" not in reply.lower() and "Сначала войдите" in reply

    assert "пароль" in await enter_login(phone)


# --- secrets -----------------------------------------------------------------


async def test_password_reaches_no_fsm_row_and_no_database_byte(app: App) -> None:
    billing = app.billing
    assert isinstance(billing, EmbeddedBilling)
    await billing.add_account(CANARY_LOGIN, "ТСЖ Лесное", SecretStr(CANARY_PASSWORD))
    phone = phone_of(app)
    await start_login(phone)
    await enter_login(phone, CANARY_LOGIN)
    await enter_password(phone, CANARY_PASSWORD + "-typo")
    await enter_login(phone, CANARY_LOGIN)
    reply, _ = await enter_password(phone, CANARY_PASSWORD)
    assert "Вы вошли" in reply

    async with app.session_pool() as session:
        account = (
            await session.scalars(select(Account).where(Account.login == CANARY_LOGIN))
        ).one()
    assert await app.runner.drain(10.0)  # every update's writes made, done marks included
    fsm = await fsm_contents(app.settings.DATABASE_URL, app.settings.REDIS_URL)
    assert fsm, "the login step must have used the FSM storage"
    assert not [key for key, value in fsm.items() if CANARY_PASSWORD in value]
    assert account.password_encrypted and CANARY_PASSWORD not in account.password_encrypted
    # The bot's own database (billing's database is not ours), SQLite's WAL included.
    stored = await stored_bytes(app.settings.DATABASE_URL)
    assert stored, "no bot database found"
    for name, data in stored.items():
        assert CANARY_PASSWORD.encode() not in data, name


# --- logout ------------------------------------------------------------------


async def test_logout_then_the_menu_is_refused(app: App) -> None:
    phone = phone_of(app)
    await log_in(phone)
    menu = phone.last_bot_message()
    assert menu is not None

    await phone.send_command("/logout")
    assert "Вы вышли" in (await phone.wait_for()).text

    await phone.send_command("/menu")
    assert "Сначала войдите" in (await phone.wait_for()).text
    reaction = await phone.tap("Передача показаний по дому", message=menu)
    assert reaction.answer is not None and "Сначала войдите" in str(reaction.answer)
    async with app.session_pool() as session:
        account = (await session.scalars(select(Account))).one()
    assert account.password_encrypted is None, "the last user left: the password goes"


async def test_logout_takes_the_team_commands_off_the_former_admins_menu(app: App) -> None:
    phone = phone_of(app)
    await log_in(phone)
    own_menu = {"type": "chat", "chat_id": 1001}
    assert {"team", "invite"} <= {c["command"] for c in app.tg.sent_commands(scope=own_menu)}

    await phone.send_command("/logout")
    await phone.wait_for("Вы вышли")

    # No menu of their own any more: the chat shows the bot's plain commands.
    assert app.tg.sent_commands(scope=own_menu) == []
    assert "team" not in {c["command"] for c in app.tg.sent_commands()}
    await phone.send_command("/team")
    assert "Сначала войдите" in (await phone.wait_for()).text


async def test_logout_of_one_user_leaves_the_other_working(app: App) -> None:
    first, second = phone_of(app, 1001), phone_of(app, 1002, "Пётр")
    await log_in(first)
    await log_in(second)

    await first.send_command("/logout")
    await first.wait_for("Вы вышли")

    async with app.session_pool() as session:
        account = (await session.scalars(select(Account))).one()
    assert account.password_encrypted is not None
    await second.tap("Передача показаний по дому", until="Выберите дом")


async def test_logout_when_not_logged_in(app: App) -> None:
    phone = phone_of(app)

    await phone.send_command("/logout")

    assert "Вы и так не вошли" in (await phone.wait_for()).text
