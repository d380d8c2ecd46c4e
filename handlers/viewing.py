"""«Просмотр показаний приборов» and «Настройки»."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup
from sqlalchemy.ext.asyncio import AsyncSession

import texts
from billing_client.base import Billing
from billing_client.errors import BillingError, NotFound
from handlers.buildings import BuildingList
from handlers.filters import LinkedUser
from handlers.live import edit_card, take_card
from keyboards.callbacks import (
    BuildingChosen,
    MenuAction,
    MenuCallback,
    Purpose,
    SettingsAction,
    ViewPage,
)
from keyboards.readings import view_keyboard
from services.buildings import BuildingDirectory
from services.credentials import AccountNotLinked, CredentialsProvider
from services.preferences import toggle_show_previous
from services.viewing import accepted_page, shift_period
from storage.models import TelegramUser


async def _render_view(
    bot: Bot,
    chat_id: int,
    state: FSMContext,
    session: AsyncSession,
    user: TelegramUser,
    directory: BuildingDirectory,
    credentials: CredentialsProvider,
    billing: Billing,
    building_id: str,
    period: str | None,
    page: int,
) -> None:
    assert user.account_id is not None
    buildings = BuildingList(bot, state, session, user, directory, credentials)
    try:
        auth = await credentials.auth_for(session, user.account_id)
        building = await directory.get(user.account_id, auth, building_id)
        if building is None:
            raise NotFound
        result = await accepted_page(billing, auth, building_id, period, page)
    except NotFound:
        await buildings.building_gone(chat_id, Purpose.VIEW)
        return
    except (AccountNotLinked, BillingError) as exc:
        await buildings.unavailable(chat_id, exc, edit=True)
        return
    lines = [texts.view_header(building.address, result.period)]
    if result.lines:
        lines += [
            texts.view_line(ln.apartment, ln.serial_number, ln.tariff, ln.value, ln.taken)
            for ln in result.lines
        ]
    else:
        lines.append(texts.view_empty(result.period))
    await edit_card(
        bot,
        chat_id,
        state,
        "\n".join(lines),
        view_keyboard(
            building_id,
            result.period,
            page=result.page,
            pages=result.pages,
            earlier=shift_period(result.period, -1),
            later=result.later_period,
        ),
    )


async def on_view(
    callback: CallbackQuery,
    callback_data: BuildingChosen | ViewPage,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    linked_user: TelegramUser,
    directory: BuildingDirectory,
    credentials: CredentialsProvider,
    billing: Billing,
) -> None:
    """A building chosen to view (this period, first page), or another page or period."""
    period, page = None, 0
    if isinstance(callback_data, ViewPage):
        period, page = callback_data.period, callback_data.page
    else:
        await state.clear()
    await _render_view(
        bot,
        await take_card(callback, state),
        state,
        session,
        linked_user,
        directory,
        credentials,
        billing,
        callback_data.building_id,
        period,
        page,
    )


def _settings_keyboard(show_previous: bool) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=texts.toggle_previous(show_previous),
                    callback_data=SettingsAction(toggle="previous").pack(),
                )
            ],
            [
                InlineKeyboardButton(
                    text=texts.BTN_EXIT,
                    callback_data=MenuCallback(action=MenuAction.HOME).pack(),
                )
            ],
        ]
    )


async def on_settings(
    callback: CallbackQuery, bot: Bot, state: FSMContext, linked_user: TelegramUser
) -> None:
    await callback.answer()
    assert callback.message is not None
    await state.clear()
    await state.update_data({"card_id": callback.message.message_id})
    await edit_card(
        bot,
        callback.message.chat.id,
        state,
        texts.SETTINGS_TITLE,
        _settings_keyboard(linked_user.show_previous),
    )


async def setting_toggled(
    callback: CallbackQuery,
    bot: Bot,
    state: FSMContext,
    session: AsyncSession,
    linked_user: TelegramUser,
) -> None:
    assert callback.message is not None
    shown = await toggle_show_previous(session, linked_user)
    await callback.answer(texts.settings_saved(shown))
    await edit_card(
        bot,
        callback.message.chat.id,
        state,
        texts.SETTINGS_TITLE,
        _settings_keyboard(shown),
        message_id=callback.message.message_id,
    )


def create_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.filter(LinkedUser())
    router.callback_query.register(on_view, BuildingChosen.filter(F.purpose == Purpose.VIEW))
    router.callback_query.register(on_view, ViewPage.filter())
    router.callback_query.register(
        on_settings, MenuCallback.filter(F.action == MenuAction.SETTINGS)
    )
    router.callback_query.register(setting_toggled, SettingsAction.filter())
    return router
