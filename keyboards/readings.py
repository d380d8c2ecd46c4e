"""Keyboards of choosing a building, the meter card, the review and viewing."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

import texts
from billing_client.models import Building
from keyboards.callbacks import (
    BuildingChosen,
    BuildingsPage,
    Purpose,
    ReviewAction,
    ReviewActionKind,
    SlotAction,
    SlotActionKind,
    ViewPage,
)
from services.walk import SkipReason


def _button(text: str, data: object) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())  # type: ignore[attr-defined]


def _address_label(building: Building) -> str:
    # The city is the same for almost every company; the street and house are what
    # the inspector reads on the wall.
    return f"{building.street}, {building.house}"


def buildings_keyboard(
    buildings: Sequence[Building], purpose: Purpose, *, page: int, pages: int
) -> InlineKeyboardMarkup:
    """One building per row, then page buttons when there is more than one page."""
    rows = [
        [_button(_address_label(b), BuildingChosen(purpose=purpose, building_id=b.id))]
        for b in buildings
    ]
    if pages > 1:
        nav = []
        if page > 0:
            nav.append(_button(texts.BTN_PREV_PAGE, BuildingsPage(purpose=purpose, page=page - 1)))
        nav.append(_button(texts.btn_page(page, pages), BuildingsPage(purpose=purpose, page=page)))
        if page < pages - 1:
            nav.append(_button(texts.BTN_NEXT_PAGE, BuildingsPage(purpose=purpose, page=page + 1)))
        rows.append(nav)
    return InlineKeyboardMarkup(inline_keyboard=rows)


def search_keyboard(buildings: Sequence[Building], purpose: Purpose) -> InlineKeyboardMarkup:
    rows = [
        [_button(_address_label(b), BuildingChosen(purpose=purpose, building_id=b.id))]
        for b in buildings
    ]
    rows.append([_button(texts.BTN_ALL_BUILDINGS, BuildingsPage(purpose=purpose, page=0))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _slot(action: SlotActionKind, draft_id: int, position: int, arg: str = "") -> SlotAction:
    return SlotAction(action=action, draft_id=draft_id, position=position, arg=arg)


def card_keyboard(draft_id: int, position: int) -> InlineKeyboardMarkup:
    """Under the meter card: the big actions first, sending last."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _button(texts.BTN_BACK, _slot(SlotActionKind.BACK, draft_id, position)),
                _button(texts.BTN_SKIP, _slot(SlotActionKind.SKIP, draft_id, position)),
            ],
            [
                _button(texts.BTN_JUMP, _slot(SlotActionKind.JUMP, draft_id, position)),
                _button(texts.BTN_SEND, _slot(SlotActionKind.SEND, draft_id, position)),
            ],
            [_button(texts.BTN_EXIT, _slot(SlotActionKind.EXIT, draft_id, position))],
        ]
    )


def skip_reasons_keyboard(draft_id: int, position: int) -> InlineKeyboardMarkup:
    rows = [
        [_button(label, _slot(SlotActionKind.REASON, draft_id, position, reason.value))]
        for reason, label in texts.SKIP_REASONS.items()
    ]
    rows.append([_button(texts.BTN_RETURN, _slot(SlotActionKind.CARD, draft_id, position))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def confirm_value_keyboard(draft_id: int, position: int, value: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(texts.btn_keep(value), _slot(SlotActionKind.KEEP, draft_id, position, value))],
            [_button(texts.BTN_RETYPE, _slot(SlotActionKind.RETYPE, draft_id, position))],
        ]
    )


def back_to_card_keyboard(draft_id: int, position: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(texts.BTN_RETURN, _slot(SlotActionKind.CARD, draft_id, position))]
        ]
    )


def review_keyboard(draft_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _button(
                    texts.BTN_RETURN_TO_EMPTY,
                    ReviewAction(action=ReviewActionKind.RETURN, draft_id=draft_id),
                )
            ],
            [
                _button(
                    texts.BTN_SEND, ReviewAction(action=ReviewActionKind.SEND, draft_id=draft_id)
                )
            ],
        ]
    )


def not_all_filled_keyboard(draft_id: int) -> InlineKeyboardMarkup:
    """The seed's question: «Вернуться» or «Отправить» anyway."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _button(
                    texts.BTN_RETURN,
                    ReviewAction(action=ReviewActionKind.RETURN, draft_id=draft_id),
                ),
                _button(
                    texts.BTN_SEND,
                    ReviewAction(action=ReviewActionKind.SEND_ANYWAY, draft_id=draft_id),
                ),
            ]
        ]
    )


def view_keyboard(
    building_id: str,
    period: str,
    *,
    page: int,
    pages: int,
    earlier: str,
    later: str | None,
) -> InlineKeyboardMarkup:
    rows: list[list[InlineKeyboardButton]] = []
    if pages > 1:
        nav = []
        if page > 0:
            nav.append(
                _button(
                    texts.BTN_PREV_PAGE,
                    ViewPage(building_id=building_id, period=period, page=page - 1),
                )
            )
        nav.append(
            _button(
                texts.btn_page(page, pages),
                ViewPage(building_id=building_id, period=period, page=page),
            )
        )
        if page < pages - 1:
            nav.append(
                _button(
                    texts.BTN_NEXT_PAGE,
                    ViewPage(building_id=building_id, period=period, page=page + 1),
                )
            )
        rows.append(nav)
    periods = [
        _button(texts.BTN_EARLIER_PERIOD, ViewPage(building_id=building_id, period=earlier, page=0))
    ]
    if later:
        periods.append(
            _button(texts.BTN_LATER_PERIOD, ViewPage(building_id=building_id, period=later, page=0))
        )
    rows.append(periods)
    return InlineKeyboardMarkup(inline_keyboard=rows)


def reason_of(arg: str) -> SkipReason:
    try:
        return SkipReason(arg)
    except ValueError:
        return SkipReason.NONE
