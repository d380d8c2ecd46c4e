"""Every CallbackData of the bot: typed fields, short versioned prefixes."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData


class MenuAction(StrEnum):
    SEND = "send"
    VIEW = "view"
    SETTINGS = "settings"
    HOME = "home"


class MenuCallback(CallbackData, prefix="m1"):
    action: MenuAction


class Purpose(StrEnum):
    SEND = "s"
    VIEW = "v"


class BuildingsPage(CallbackData, prefix="bp1"):
    purpose: Purpose
    page: int


class BuildingChosen(CallbackData, prefix="bc1"):
    purpose: Purpose
    building_id: str


class SlotActionKind(StrEnum):
    SKIP = "skip"
    REASON = "reason"
    BACK = "back"
    JUMP = "jump"
    SEND = "send"
    KEEP = "keep"
    RETYPE = "retype"
    CARD = "card"  # back to the card from a sub-screen
    EXIT = "exit"


class SlotAction(CallbackData, prefix="sa1"):
    """A button on the card; draft and position make an old button harmless."""

    action: SlotActionKind
    draft_id: int
    position: int
    arg: str = ""


class ReviewActionKind(StrEnum):
    RETURN = "return"
    SEND = "send"
    SEND_ANYWAY = "anyway"


class ReviewAction(CallbackData, prefix="rv1"):
    action: ReviewActionKind
    draft_id: int


class ViewPage(CallbackData, prefix="vp1"):
    building_id: str
    period: str
    page: int


class SettingsAction(CallbackData, prefix="st1"):
    toggle: str


class StatusPageCallback(CallbackData, prefix="gs1"):
    """A page of /status in the supervisor's group."""

    page: int


class TeamActionKind(StrEnum):
    LIST = "list"
    INVITE = "invite"
    MEMBER = "member"
    REVOKE = "revoke"
    HAND_OVER = "admin"


class TeamAction(CallbackData, prefix="tm1"):
    action: TeamActionKind
    member_id: int = 0
