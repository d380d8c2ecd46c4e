"""Steps shared by the inspector-flow tests: log in, open a building, read the draft."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import DraftSlot
from tests.conftest import App
from tests.harness.phone import Phone
from tests.harness.screen import ScreenMessage
from tests.harness.telegram_html import utf16_slice

# The demo account's first building (84 apartments, 128 slots): "1" (день, ночь), "2"
# (пик, полупик, ночь), ..., "38а", ..., "НП-1".."НП-3" at the end.
BUILDING_QUERY = "авиастраителей"


def phone_of(app: App, user_id: int = 1001, name: str = "Иван") -> Phone:
    return app.tg.user(user_id=user_id, first_name=name, username=f"user{user_id}")


async def log_in(phone: Phone) -> None:
    await phone.send_command("/start")
    await phone.wait_for("логин")
    await phone.ask("demo", until="пароль")
    await phone.ask("demo", until="Вы вошли")


async def choose_building(phone: Phone, menu_button: str = "Передача показаний по дому") -> None:
    """From the main menu to the building found by BUILDING_QUERY (its card or view)."""
    await phone.tap(menu_button, until="Выберите")
    found = await phone.ask(BUILDING_QUERY, until="Нашлось")
    await phone.tap(found.buttons[0][0])


async def open_building(app: App, user_id: int = 1001, name: str = "Иван") -> Phone:
    """A new inspector logs in and opens the demo building: the card of its first slot."""
    phone = phone_of(app, user_id, name)
    await log_in(phone)
    await choose_building(phone)
    await phone.wait_for("Введите показание")
    return phone


async def draft_slots(pool: async_sessionmaker[AsyncSession]) -> list[DraftSlot]:
    async with pool() as session:
        rows = await session.execute(select(DraftSlot).order_by(DraftSlot.position))
        return list(rows.scalars())


async def slots(app: App) -> list[DraftSlot]:
    return await draft_slots(app.session_pool)


def plausible(slot: DraftSlot, above: int = 1) -> str:
    """A value the slot takes without a warning: `above` over the previous reading."""
    previous = Decimal(slot.previous_value or "0")
    value = previous + above
    return f"{value:.{slot.fraction_digits}f}" if slot.fraction_digits else str(int(value))


def card_text(phone: Phone) -> str:
    card = phone.last_bot_message()
    assert card is not None
    return card.text


def bold_parts(message: ScreenMessage) -> list[str]:
    """The parts of a message the phone shows in bold."""
    return [
        utf16_slice(message.text, e["offset"], e["length"])
        for e in message.raw.get("entities", [])
        if e["type"] == "bold"
    ]


def live_cards(phone: Phone) -> list[ScreenMessage]:
    """The bot's messages that still have buttons (the flow allows one)."""
    return [m for m in phone.bot_messages() if m.buttons]


def shows(label: str) -> Callable[[ScreenMessage], bool]:
    """A wait condition: a bot message with this button."""
    return lambda message: label in message.button_labels


async def fill_last_apartment(phone: Phone, rows: list[DraftSlot]) -> DraftSlot:
    """Jump to the building's last apartment and fill its slots: the review comes next.

    Returns the last slot."""
    last = rows[-1]
    await phone.tap("К квартире №…", until="Напишите номер квартиры")
    await phone.ask(last.apartment, until=f"Квартира: {last.apartment}")
    for row in rows:
        if row.apartment == last.apartment:
            await phone.ask(plausible(row), until="Прибор" if row != last else "Ждут отправки")
    return last
