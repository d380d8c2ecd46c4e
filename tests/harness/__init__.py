"""End-to-end test harness: a fake Telegram Bot API server, scripted users, the bot process.

See docs/testing.md. The parts:
    FakeTelegram   fake_telegram.py  the server (HTTP on 127.0.0.1), calls, faults, webhooks
                   methods.py        the Bot API methods it implements
    Phone, Group   phone.py          the scripted user and group chats
    Screen         screen.py         what a phone shows, for assertions
    Faults         faults.py         429 / 5xx / rate limits / blocked users
    BotProcess     process.py        `python bot.py` as a subprocess
    fixtures       fixtures.py       pytest fixtures (pytest_plugins = ["tests.harness.fixtures"])
"""

from .fake_telegram import (
    BOT_TOKEN,
    BOT_USERNAME,
    BotDied,
    EarlyRetry,
    FakeTelegram,
    WaitTimeout,
)
from .faults import FaultRule, Faults, RateLimit
from .phone import ChatView, Group, Phone, Reaction
from .process import BotProcess, ProcessExited, StartBot, StopResult
from .screen import ReceivedFile, Screen, ScreenMessage
from .state import GROUP_ANONYMOUS_BOT, ApiError, Call, HarnessError, Throttle
from .telegram_html import EntityParseError, parse_html

__all__ = [
    "BOT_TOKEN",
    "BOT_USERNAME",
    "GROUP_ANONYMOUS_BOT",
    "ApiError",
    "BotDied",
    "BotProcess",
    "Call",
    "ChatView",
    "EarlyRetry",
    "EntityParseError",
    "FakeTelegram",
    "FaultRule",
    "Faults",
    "Group",
    "HarnessError",
    "Phone",
    "ProcessExited",
    "RateLimit",
    "Reaction",
    "ReceivedFile",
    "Screen",
    "ScreenMessage",
    "StartBot",
    "StopResult",
    "Throttle",
    "WaitTimeout",
    "parse_html",
]
