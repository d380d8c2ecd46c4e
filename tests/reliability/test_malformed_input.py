"""Malformed input: thousands of generated strings per text field, through the production
dispatcher, middlewares, handlers, services and database (in-process: Bot API calls are
answered in memory, FSM state is kept in memory; the inbox has tests of its own).

Every string must get an answer, none may reach the "something went wrong" handler
or escape it, and no value other than ASCII digits (with one '.') may be stored.
The four fields run concurrently, by four users.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.base import BaseSession
from aiogram.enums import ParseMode
from aiogram.fsm.context import FSMContext
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import CallbackQuery, Chat, Message, Update, User
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

import texts
from billing_client import open_billing
from bot import create_dispatcher
from handlers.auth import Login
from handlers.buildings import Choosing
from handlers.readings import Walk
from keyboards.callbacks import (
    BuildingChosen,
    MenuAction,
    MenuCallback,
    SlotAction,
    SlotActionKind,
)
from storage.crypto import Vault
from storage.engine import create_engine, create_session_pool
from storage.migrate import upgrade_database
from storage.models import DraftSlot
from tests.conftest import make_settings
from tests.harness.databases import Databases, on_postgresql
from tests.harness.fake_telegram import BOT_TOKEN
from tests.harness.hashing import fast_hasher

TYPIST = {"value": 8001, "login": 8002, "apartment": 8003, "search": 8004}
ASCII_VALUE = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)
ANSWERS = {"sendMessage", "editMessageText", "answerCallbackQuery"}


class MemorySession(BaseSession):
    """Answers every Bot API call in memory and records it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[TelegramMethod[Any]] = []
        self._ids = itertools.count(1_000)

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 (aiogram's signature)
    ) -> TelegramType:
        self.calls.append(method)
        if method.__api_method__ == "getMe":  # a /command@mention makes aiogram ask
            return User(  # type: ignore[return-value]
                id=bot.id, is_bot=True, first_name="Показания", username="meters_test_bot"
            )
        if method.__api_method__ in {"sendMessage", "editMessageText"}:
            message = {
                "message_id": getattr(method, "message_id", None) or next(self._ids),
                "date": int(datetime.now(UTC).timestamp()),
                "chat": {"id": int(getattr(method, "chat_id", 0) or 0), "type": "private"},
                "text": str(getattr(method, "text", "")),
            }
            # Read as a real session reads Telegram's answer: into the method's result type.
            answer = json.dumps({"ok": True, "result": message})
            return self.check_response(bot, method, 200, answer).result  # type: ignore[return-value]
        return True  # type: ignore[return-value]

    async def close(self) -> None:
        pass

    def stream_content(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover
        raise NotImplementedError("no files in this test")


@dataclass
class Offline:
    bot: Bot
    session: MemorySession
    dispatcher: Dispatcher
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    failed: int = 0  # exceptions that escaped the dispatcher

    def _user(self, user_id: int) -> User:
        return User(id=user_id, is_bot=False, first_name="Тест")

    async def _feed(self, update: Update) -> list[TelegramMethod[Any]]:
        mark = len(self.session.calls)
        try:
            await self.dispatcher.feed_update(self.bot, update)
        except Exception:  # counted: the figure is "0 crashes"
            self.failed += 1
        # Calls of other users' concurrent updates are told apart by chat id.
        return self.session.calls[mark:]

    async def say(self, user_id: int, text: str) -> list[TelegramMethod[Any]]:
        n = next(self.ids)
        message = Message(
            message_id=n,
            date=datetime.now(UTC),
            chat=Chat(id=user_id, type="private"),
            from_user=self._user(user_id),
            text=text,
        )
        return await self._feed(Update(update_id=n, message=message))

    async def press(self, user_id: int, data: str, message_id: int) -> list[TelegramMethod[Any]]:
        n = next(self.ids)
        shown = Message(
            message_id=message_id, date=datetime.now(UTC), chat=Chat(id=user_id, type="private")
        )
        query = CallbackQuery(
            id=str(n), from_user=self._user(user_id), chat_instance="1", message=shown, data=data
        )
        return await self._feed(Update(update_id=n, callback_query=query))

    def state(self, user_id: int) -> FSMContext:
        return self.dispatcher.fsm.get_context(self.bot, user_id, user_id)


def _scratch(tmp_path: Path) -> Path:
    # On tmpfs when there is one: thousands of fsynced commits are the cost here.
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else tmp_path


@pytest.fixture
async def offline(tmp_path: Path, databases: Databases) -> AsyncIterator[Offline]:
    base = _scratch(tmp_path)
    # PostgreSQL in the suite's second pass (TEST_DATABASE_URL), else SQLite on tmpfs.
    on_pg = databases.settings() if on_postgresql() else {}
    settings_ = make_settings(base, "http://127.0.0.1:9", BOT_TOKEN, **on_pg)
    engine = create_engine(settings_.DATABASE_URL)
    await upgrade_database(engine)
    pool = create_session_pool(engine)
    billing = await open_billing(settings_, password_hasher=fast_hasher())
    session = MemorySession()
    bot = Bot(BOT_TOKEN, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    assert settings_.SECRET_KEY is not None
    dispatcher = create_dispatcher(
        settings=settings_,
        session_pool=pool,
        billing=billing,
        vault=Vault.from_setting(settings_.SECRET_KEY.get_secret_value()),
        storage=MemoryStorage(),
    )
    try:
        yield Offline(bot, session, dispatcher)
    finally:
        await billing.close()
        await engine.dispose()
        if base != tmp_path:
            shutil.rmtree(base, ignore_errors=True)


async def walking(app: Offline, user: int) -> None:
    """The inspector logged in and standing at the first card of a building."""
    await app.say(user, "/start")
    await app.say(user, "demo")
    menu = [c for c in await app.say(user, "demo") if c.__api_method__ == "sendMessage"]
    assert menu and "Главное меню" in str(getattr(menu[-1], "text", ""))
    calls = await app.press(user, MenuCallback(action=MenuAction.SEND).pack(), 1_000_000)
    assert any("Выберите дом" in str(getattr(c, "text", "")) for c in calls)
    found = await app.say(user, "авиастраителей")
    markup = next(getattr(c, "reply_markup", None) for c in found if getattr(c, "reply_markup", 0))
    assert markup is not None
    data = markup.inline_keyboard[0][0].callback_data
    assert data is not None and BuildingChosen.unpack(data)
    card = await app.press(user, data, 1_000_001)
    assert any("Введите показание" in str(getattr(c, "text", "")) for c in card)


def generated(strategy: st.SearchStrategy[str], count: int) -> list[str]:
    """`count` strings from a hypothesis strategy (reproducible: derandomized)."""
    found: list[str] = []

    @settings(
        max_examples=count,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(strategy)
    def collect(text: str) -> None:
        found.append(text)

    collect()
    return found


def sendable(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    # Telegram delivers no empty or blank text messages, and none over 4096 characters.
    return strategy.filter(lambda s: s.strip() != "" and len(s) <= 4096)


DIGITS = "0123456789٠١٢٣٤٥٦٧٨٩０１２３４５６７８９۰۱۲۳४५৬߀"
STREETS = ["авиастроителей", "Авиастраителей ул.", "ленина", "пр-т Дзержинского", "ё", "ул", ""]


def _number(sign: str, whole: int, separator: str, fraction: int | None) -> str:
    return f"{sign}{whole}" + ("" if fraction is None else f"{separator}{fraction}")


# Composed strategies rather than from_regex: the same shapes, generated several times faster.
FIELDS: dict[str, st.SearchStrategy[str]] = {
    "value": st.one_of(
        st.text(min_size=1, max_size=200),
        st.text(alphabet=DIGITS + " ,.-+e_\u00a0\u2009\u200b", min_size=1, max_size=24),
        st.builds(
            _number,
            st.sampled_from(["", "-", "+", " "]),
            st.integers(0, 10**10),
            st.sampled_from([".", ",", ", ", ".."]),
            st.none() | st.integers(0, 10**5),
        ),
    ),
    "apartment": st.one_of(
        st.text(min_size=1, max_size=100),
        st.builds(
            lambda prefix, number, suffix: f"{prefix}{number}{suffix}",
            st.sampled_from(["", "кв ", "кв.", "НП-", "№", "-"]),
            st.integers(-5, 10**5),
            st.sampled_from(["", "а", "Б", "a", "/1", " "]),
        ),
    ),
    "search": st.one_of(
        st.text(min_size=1, max_size=400),
        st.builds(
            lambda street, house: f"{street} {house}",
            st.sampled_from(STREETS) | st.text(max_size=30),
            st.integers(-1, 500) | st.text(max_size=5),
        ),
    ),
    "login": st.text(min_size=1, max_size=300),
}


async def _prepare(
    app: Offline, field_name: str, position: int = 0, draft_id: int | None = None
) -> None:
    """Put the field's typist where the field is asked (values: at `position` of the
    building's draft, again after a generated /menu or /cancel ended the walk)."""
    state = app.state(TYPIST[field_name])
    if field_name == "login":
        await state.set_state(Login.entering_login)
        await state.set_data({})
        return
    wanted = {
        "value": Walk.entering_value,
        "apartment": Walk.entering_apartment,
        "search": Choosing.building,
    }[field_name]
    await state.set_state(wanted)
    await state.update_data(position=position, purpose="s", pending=None)
    if draft_id is not None:
        await state.update_data(draft_id=draft_id)


async def _keep_if_asked(app: Offline, user_id: int) -> list[TelegramMethod[Any]]:
    """A value that needs confirmation is confirmed («Оставить»), so that it is stored."""
    state = app.state(user_id)
    if await state.get_state() != Walk.confirming_value.state:
        return []
    data = await state.get_data()
    keep = SlotAction(
        action=SlotActionKind.KEEP,
        draft_id=int(data["draft_id"]),
        position=int(data["position"]),
        arg=str(data["pending"]),
    )
    return await app.press(user_id, keep.pack(), int(data["card_id"]))


@dataclass
class Tally:
    inputs: int = 0
    unanswered: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)


async def _type_all(app: Offline, field_name: str, inputs: list[str]) -> Tally:
    tally = Tally(inputs=len(inputs))
    user_id = TYPIST[field_name]
    draft_id = (await app.state(user_id).get_data()).get("draft_id")
    for n, text in enumerate(inputs):
        # Values go round the first 100 slots, so many stored values get checked.
        await _prepare(app, field_name, position=n % 100, draft_id=draft_id)
        calls = await app.say(user_id, text)
        if field_name == "value":
            calls += await _keep_if_asked(app, user_id)
        mine = [c for c in calls if getattr(c, "chat_id", None) == user_id]
        if not any(c.__api_method__ in ANSWERS for c in mine):
            tally.unanswered.append(text)
        if any(getattr(c, "text", None) == texts.UNEXPECTED_ERROR for c in mine):
            tally.crashes.append(text)
    return tally


@pytest.mark.duration(150)
@pytest.mark.timeout(900)
async def test_generated_strings_in_every_text_field(offline: Offline, soak: int) -> None:
    app = offline
    for field_name in ("value", "apartment", "search"):
        await walking(app, TYPIST[field_name])
    per_field = int(os.environ.get("MALFORMED_PER_FIELD", 2000)) * soak
    inputs = {name: generated(sendable(strategy), per_field) for name, strategy in FIELDS.items()}
    tallies = dict(
        zip(
            inputs,
            await asyncio.gather(
                *(_type_all(app, name, texts_) for name, texts_ in inputs.items())
            ),
            strict=True,
        )
    )

    pool = app.dispatcher["session_pool"]
    async with pool() as session:
        values = list(
            (await session.execute(select(DraftSlot.value).where(DraftSlot.value.is_not(None))))
            .scalars()
            .all()
        )
    bad_values = [v for v in values if not ASCII_VALUE.fullmatch(v or "")]
    for name, tally in tallies.items():
        print(f"\nFIGURE malformed {name}: {tally.inputs} strings")
    unanswered = {n: t.unanswered for n, t in tallies.items() if t.unanswered}
    crashes = {n: t.crashes for n, t in tallies.items() if t.crashes}
    print(f"FIGURE malformed unanswered: {sum(map(len, unanswered.values()))}")
    print(f"FIGURE malformed crashes: {sum(map(len, crashes.values())) + app.failed}")
    print(f"FIGURE malformed non-ASCII-digit values stored: {len(bad_values)} of {len(values)}")
    assert all(t.inputs >= per_field for t in tallies.values())
    assert unanswered == {}
    assert crashes == {}
    assert app.failed == 0
    assert values, "confirmed values were stored"
    assert bad_values == []
