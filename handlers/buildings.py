"""Choosing a building: the paged list, or a typed street and house.

Shared by «Передача показаний по дому» and «Просмотр показаний приборов»; the
purpose travels in the callback data and the FSM data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiogram import Bot, F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from sqlalchemy.ext.asyncio import AsyncSession

import texts
from billing_client.errors import BillingError, InvalidCredentials
from handlers.filters import LinkedUser, Magic
from handlers.live import edit_card, new_card, take_card
from keyboards.callbacks import BuildingsPage, MenuAction, MenuCallback, Purpose
from keyboards.menu import main_menu_keyboard
from keyboards.readings import buildings_keyboard, search_keyboard
from services.buildings import BuildingDirectory
from services.credentials import AccountNotLinked, CredentialsProvider
from storage.models import TelegramUser

log = logging.getLogger(__name__)

MAX_QUERY = 200


class Choosing(StatesGroup):
    building = State()


def _prompt(purpose: Purpose) -> str:
    return texts.CHOOSE_BUILDING if purpose == Purpose.SEND else texts.CHOOSE_BUILDING_TO_VIEW


@dataclass(frozen=True, slots=True)
class BuildingList:
    """The account's buildings as buttons on the card, for one user's press or message."""

    bot: Bot
    state: FSMContext
    session: AsyncSession
    user: TelegramUser
    directory: BuildingDirectory
    credentials: CredentialsProvider

    async def show(
        self,
        chat_id: int,
        purpose: Purpose,
        *,
        page: int = 0,
        note: str | None = None,
        edit: bool = False,
    ) -> None:
        assert self.user.account_id is not None
        try:
            auth = await self.credentials.auth_for(self.session, self.user.account_id)
            listing = await self.directory.page(self.user.account_id, auth, page)
        except (AccountNotLinked, BillingError) as exc:
            await self.unavailable(chat_id, exc, edit=edit)
            return
        await self.state.set_state(Choosing.building)
        await self.state.update_data(purpose=purpose.value)
        if not listing.buildings:
            await new_card(self.bot, chat_id, self.state, texts.NO_BUILDINGS, None)
            return
        text = f"{note}\n\n{_prompt(purpose)}" if note else _prompt(purpose)
        markup = buildings_keyboard(
            listing.buildings, purpose, page=listing.page, pages=listing.pages
        )
        if edit:
            await edit_card(self.bot, chat_id, self.state, text, markup)
        else:
            await new_card(self.bot, chat_id, self.state, text, markup)

    async def unavailable(
        self, chat_id: int, exc: AccountNotLinked | BillingError, *, edit: bool = False
    ) -> None:
        """Billing can't answer for the account now: say why, with the menu to try again."""
        log.warning("Billing failed for account %s: %s", self.user.account_id, type(exc).__name__)
        if isinstance(exc, AccountNotLinked | InvalidCredentials):
            text = texts.ACCOUNT_NOT_CONNECTED
        else:
            text = texts.BILLING_NOT_ANSWERING
        if edit:
            await edit_card(self.bot, chat_id, self.state, text, main_menu_keyboard())
        else:
            await new_card(self.bot, chat_id, self.state, text, main_menu_keyboard())

    async def building_gone(self, chat_id: int, purpose: Purpose) -> None:
        """The chosen building left the account: say so and show the fresh list."""
        assert self.user.account_id is not None
        self.directory.forget(self.user.account_id)
        await self.show(chat_id, purpose, note=texts.BUILDING_GONE, edit=True)


async def on_buildings_list(
    callback: CallbackQuery,
    callback_data: MenuCallback | BuildingsPage,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    linked_user: TelegramUser,
    directory: BuildingDirectory,
    credentials: CredentialsProvider,
) -> None:
    """A menu button that starts choosing a building, or a page of the list."""
    if isinstance(callback_data, BuildingsPage):
        purpose, page = callback_data.purpose, callback_data.page
    else:
        purpose = Purpose.SEND if callback_data.action == MenuAction.SEND else Purpose.VIEW
        page = 0
    chat_id = await take_card(callback, state)
    buildings = BuildingList(bot, state, session, linked_user, directory, credentials)
    await buildings.show(chat_id, purpose, page=page, edit=True)


async def building_query_entered(
    message: Message,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    linked_user: TelegramUser,
    directory: BuildingDirectory,
    credentials: CredentialsProvider,
) -> None:
    assert message.text is not None and linked_user.account_id is not None
    data = await state.get_data()
    purpose = Purpose(data.get("purpose", Purpose.SEND.value))
    query = message.text.strip()
    buildings = BuildingList(bot, state, session, linked_user, directory, credentials)
    if len(query) > MAX_QUERY:
        await new_card(bot, message.chat.id, state, texts.QUERY_TOO_LONG, None)
        await buildings.show(message.chat.id, purpose)
        return
    try:
        auth = await credentials.auth_for(session, linked_user.account_id)
        found = await directory.search(linked_user.account_id, auth, query)
    except (AccountNotLinked, BillingError) as exc:
        # The state stays: the inspector types the address again when billing answers.
        await buildings.unavailable(message.chat.id, exc)
        return
    if not found:
        await buildings.show(message.chat.id, purpose, note=texts.search_nothing(query))
        return
    await new_card(
        bot,
        message.chat.id,
        state,
        texts.search_results(query, len(found)),
        search_keyboard(found, purpose),
    )


async def building_query_invalid(message: Message) -> None:
    await message.answer(texts.NOT_TEXT_WHILE_CHOOSING)


def create_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(LinkedUser())
    router.callback_query.filter(LinkedUser())
    router.callback_query.register(
        on_buildings_list,
        MenuCallback.filter(F.action.in_({MenuAction.SEND, MenuAction.VIEW})),
    )
    router.callback_query.register(on_buildings_list, BuildingsPage.filter())
    choosing = StateFilter(Choosing.building)
    router.message.register(
        building_query_entered, choosing, Magic(F.text), Magic(~F.text.startswith("/"))
    )
    router.message.register(building_query_invalid, choosing, Magic(~F.text))
    return router
