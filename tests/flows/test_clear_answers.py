"""Billing can't serve the company's account: the inspector hears why, never the generic
error, and the menu tries again."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from sqlalchemy import select

import texts
from billing_client.embedded.backend import EmbeddedBilling
from billing_client.errors import BillingUnavailable, InvalidCredentials
from billing_client.models import LoginResult
from services.buildings import BuildingDirectory
from services.credentials import CredentialsProvider
from storage.models import Account
from tests.conftest import App
from tests.flows.walking import BUILDING_QUERY, log_in, phone_of
from tests.harness.phone import Phone


async def billing_down(*args: object, **kwargs: object) -> object:
    raise BillingUnavailable("timeout")


def no_generic_error(phone: Phone) -> bool:
    return not any(texts.UNEXPECTED_ERROR in m.text for m in phone.bot_messages())


async def test_the_building_list_while_billing_is_down_says_so_and_the_menu_retries(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = phone_of(app)
    await log_in(phone)
    with monkeypatch.context() as down:
        down.setattr(app.billing, "buildings", billing_down)
        reaction = await phone.tap(texts.MENU_SEND, until=texts.BILLING_NOT_ANSWERING)
        assert reaction.message is not None and texts.MENU_SEND in reaction.message.button_labels
    await phone.tap(texts.MENU_SEND, until="Выберите дом")
    await app.tg.wait_quiet()
    assert no_generic_error(phone)


async def test_an_address_typed_while_billing_is_down_says_so_and_can_be_typed_again(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = phone_of(app)
    await log_in(phone)
    await phone.tap(texts.MENU_SEND, until="Выберите дом")
    # The list is cached in memory only: a restart of the bot loses it.
    directory: BuildingDirectory = app.dispatcher["directory"]
    async with app.session_pool() as session:
        account = await session.scalar(select(Account))
    assert account is not None
    directory.forget(account.id)
    with monkeypatch.context() as down:
        down.setattr(app.billing, "buildings", billing_down)
        await phone.ask(BUILDING_QUERY, until=texts.BILLING_NOT_ANSWERING)
    await phone.ask(BUILDING_QUERY, until="Нашлось")
    await app.tg.wait_quiet()
    assert no_generic_error(phone)


async def test_viewing_a_building_while_billing_is_down_says_so(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = phone_of(app)
    await log_in(phone)
    await phone.tap(texts.MENU_VIEW, until="посмотреть")
    found = await phone.ask(BUILDING_QUERY, until="Нашлось")
    monkeypatch.setattr(app.billing, "meters", billing_down)
    await phone.tap(found.buttons[0][0], until=texts.BILLING_NOT_ANSWERING)
    await app.tg.wait_quiet()
    assert no_generic_error(phone)


async def test_a_building_chosen_after_the_companys_password_was_erased_says_what_to_do(
    app: App,
) -> None:
    phone = phone_of(app)
    await log_in(phone)
    await phone.tap(texts.MENU_SEND, until="Выберите дом")
    found = await phone.ask(BUILDING_QUERY, until="Нашлось")
    # Meanwhile the last user's /logout erased the account's password.
    async with app.session_pool() as session:
        account = await session.scalar(select(Account))
        assert account is not None
        account.password_encrypted = None
        await session.commit()
    credentials: CredentialsProvider = app.dispatcher["credentials"]
    credentials.forget(account.id)
    reaction = await phone.tap(found.buttons[0][0], until=texts.ACCOUNT_NOT_CONNECTED)
    assert reaction.message is not None and texts.MENU_SEND in reaction.message.button_labels
    await app.tg.wait_quiet()
    assert no_generic_error(phone)


async def test_a_password_changed_in_billing_is_tried_once_and_the_admin_logs_in_again(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The company changed its password in billing: the stored one is refused. Trying it
    on every tap would lock the company's billing account after a few tries."""
    phone = phone_of(app)
    await log_in(phone)
    tries: list[str] = []

    async def refused(login: str, password: SecretStr) -> LoginResult:
        tries.append(login)
        raise InvalidCredentials("invalid_credentials")

    billing = app.billing
    assert isinstance(billing, EmbeddedBilling)
    with monkeypatch.context() as changed:
        changed.setattr(billing, "login", refused)
        await billing.expire_tokens("demo")  # the bot must log in again
        await phone.tap(texts.MENU_SEND, until=texts.ACCOUNT_NOT_CONNECTED)
        for _ in range(2):  # the same answer on the same message: nothing to change
            await phone.tap(texts.MENU_SEND)
            await app.tg.wait_quiet()
        assert len(tries) == 1, "a refused password is not tried again"
        assert no_generic_error(phone)
        # «войти заново (/start)»: /start asks for the login, as the answer says.
        await phone.send_command("/start")
        await phone.wait_for("Введите логин")
    await phone.ask("demo", until="пароль")
    await phone.ask("demo", until="Вы вошли")
    await phone.tap(texts.MENU_SEND, until="Выберите дом")
    await app.tg.wait_quiet()
    assert no_generic_error(phone)
