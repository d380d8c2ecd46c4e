"""Tests of the end-to-end harness itself: the fake Bot API server, the phone, BotProcess.

Most tests drive a real aiogram Bot + Dispatcher in-process through real HTTP, so what
passes here is what aiogram (and so bot.py) will see. A few use raw HTTP to pin the
wire format, and one runs a bot script as a subprocess through BotProcess.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import io
import json
import re
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openpyxl
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    Update,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from tests.harness import (
    BOT_TOKEN,
    GROUP_ANONYMOUS_BOT,
    BotDied,
    BotProcess,
    FakeTelegram,
    HarnessError,
    RateLimit,
    StartBot,
    WaitTimeout,
    parse_html,
)

# The fake Bot API server; the scripts run as bots open no database: no PostgreSQL
# or Redis, so only the SQLite pass runs these (no_services, see tasks.py).
pytestmark = pytest.mark.no_services

# The harness's own fixtures; the project registers them in tests/conftest.py.
pytest_plugins = ["tests.harness.fixtures"]


class Choice(CallbackData, prefix="choice"):
    answer: str


def echo_router() -> Router:
    """A tiny bot: /start with two buttons, a button edits its message, files, echo."""
    router = Router(name="echo")

    @router.message(Command("start"))
    async def cmd_start(message: Message) -> None:
        keyboard = InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(text="Да", callback_data=Choice(answer="yes").pack()),
                    InlineKeyboardButton(text="Нет", callback_data=Choice(answer="no").pack()),
                ]
            ]
        )
        await message.answer("Привет, <b>Иван</b>! Начнём?", reply_markup=keyboard)

    @router.callback_query(Choice.filter())
    async def on_choice(query: CallbackQuery, callback_data: Choice) -> None:
        assert isinstance(query.message, Message)
        await query.message.edit_text(f"Вы выбрали: {callback_data.answer}")
        await query.answer("Принято")

    @router.message(F.document)
    async def on_document(message: Message, bot: Bot) -> None:
        assert message.document is not None
        data = await bot.download(message.document)
        assert data is not None
        digest = hashlib.sha256(data.read()).hexdigest()
        await message.answer(f"Файл {html.escape(message.document.file_name or '')}: {digest}")

    @router.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(f"Эхо: {html.escape(message.text or '')}")

    return router


def make_bot(tg: FakeTelegram) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(tg.api_url))
    return Bot(
        tg.bot_token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML)
    )


@contextlib.asynccontextmanager
async def polling(tg: FakeTelegram, *routers: Router) -> AsyncIterator[Bot]:
    """Run a Dispatcher with long polling against the fake until the block ends."""
    bot = make_bot(tg)
    dispatcher = Dispatcher()
    dispatcher.include_routers(*routers)
    since = tg.now()
    task = asyncio.create_task(
        dispatcher.start_polling(bot, handle_signals=False, polling_timeout=5)
    )
    try:
        await tg.wait_for_call("getUpdates", since=since)
        yield bot
    finally:
        if not task.done():
            await dispatcher.stop_polling()
        await task


@contextlib.asynccontextmanager
async def bot_only(tg: FakeTelegram) -> AsyncIterator[Bot]:
    """A Bot without a dispatcher, for calling methods directly."""
    bot = make_bot(tg)
    try:
        yield bot
    finally:
        await bot.session.close()


async def raw_call(
    tg: FakeTelegram, method: str, *, token: str | None = None, **kwargs: Any
) -> tuple[int, Any]:
    """One HTTP request to the fake, bypassing aiogram (to pin the wire format)."""
    url = f"{tg.api_url}/bot{token or tg.bot_token}/{method}"
    async with aiohttp.ClientSession() as http, http.post(url, **kwargs) as response:
        return response.status, await response.json()


# ----------------------------------------------------------------- long polling


async def test_long_polling_delivers_updates_in_order_and_confirms_them(
    fake_telegram: FakeTelegram,
) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван", "ivan")
    # Typed while the bot was down: must arrive, in order, once the bot polls.
    for value in ("13305", "13306", "13307"):
        await phone.send(value)

    async with polling(tg, echo_router()):
        await phone.wait_for("Эхо: 13307", since=0)
        reply = await phone.ask("13308")
        await tg.wait_all_confirmed()

    assert reply.text == "Эхо: 13308"
    assert [m.text for m in phone.bot_messages()] == [
        "Эхо: 13305",
        "Эхо: 13306",
        "Эхо: 13307",
        "Эхо: 13308",
    ]
    assert tg.pending_updates() == []
    offsets = [c.params.get("offset", 0) for c in tg.calls_of("getUpdates")]
    assert offsets == sorted(offsets), "aiogram confirms by increasing offsets"
    first_poll = tg.calls_of("getUpdates")[0]
    assert "message" in first_poll.params["allowed_updates"]


async def test_unconfirmed_update_is_redelivered_until_offset_passes_it(
    fake_telegram: FakeTelegram,
) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван")
    update = await phone.send("42")

    status, first = await raw_call(tg, "getUpdates", json={"timeout": 0})
    _, again = await raw_call(tg, "getUpdates", json={"timeout": 0})
    _, after_offset = await raw_call(
        tg, "getUpdates", json={"timeout": 0, "offset": update["update_id"] + 1}
    )

    assert status == 200
    assert first == again == {"ok": True, "result": [update]}
    assert after_offset == {"ok": True, "result": []}
    assert tg.pending_updates() == []


async def test_get_updates_is_a_true_long_poll(fake_telegram: FakeTelegram) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван")
    poll = asyncio.create_task(raw_call(tg, "getUpdates", data={"timeout": "30"}))
    await tg.wait_for_call("getUpdates")
    assert not poll.done()

    started = tg.now()
    await phone.send("привет")
    status, body = await asyncio.wait_for(poll, 5)

    assert status == 200
    assert [u["message"]["text"] for u in body["result"]] == ["привет"]
    assert tg.now() - started < 2, "answered when the update arrived, not at the timeout"


async def test_a_second_poller_terminates_the_first_with_409(fake_telegram: FakeTelegram) -> None:
    tg = fake_telegram
    first = asyncio.create_task(raw_call(tg, "getUpdates", data={"timeout": "30"}))
    await tg.wait_for_call("getUpdates")
    second = asyncio.create_task(raw_call(tg, "getUpdates", data={"timeout": "0"}))

    status, body = await asyncio.wait_for(first, 5)
    await second

    assert status == 409
    assert body["description"].startswith("Conflict: terminated by other getUpdates request")


async def test_allowed_updates_filter_updates_created_afterwards(
    fake_telegram: FakeTelegram,
) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван")
    await raw_call(tg, "getUpdates", json={"timeout": 0, "allowed_updates": ["callback_query"]})

    update = await phone.send("не дойдёт")

    assert tg.pending_updates() == []
    assert tg.dropped_updates[-1][0] == update


async def test_duplicate_mode_delivers_each_update_twice(fake_telegram: FakeTelegram) -> None:
    tg = fake_telegram
    tg.duplicate_updates = True
    phone = tg.user(1001, "Иван")
    seen: list[int] = []
    router = Router()

    @router.message()
    async def count(message: Message, event_update: Update) -> None:
        seen.append(event_update.update_id)
        await message.answer(f"#{len(seen)}")

    sent = [await phone.send(text) for text in ("1", "2", "3")]
    async with polling(tg, router):
        await phone.wait_for("#6", since=0)
        await tg.wait_all_confirmed()

    ids = [u["update_id"] for u in sent]
    assert sorted(seen) == sorted(ids * 2)


# ----------------------------------------------------------------- buttons, edits, screen


async def test_button_press_is_answered_and_the_edit_removes_the_keyboard(
    fake_telegram: FakeTelegram,
) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван")
    async with polling(tg, echo_router()):
        menu = await phone.ask("/start")
        assert menu.text == "Привет, Иван! Начнём?"
        assert menu.buttons == (("Да", "Нет"),)
        assert menu.raw["entities"] == [{"type": "bold", "offset": 8, "length": 4}]

        reaction = await phone.tap("Да", until="Вы выбрали")

    assert reaction.answer == {"text": "Принято"}
    assert reaction.text == "Вы выбрали: yes"
    edited = phone.screen().find("Вы выбрали")
    assert edited is not None and edited.edited and edited.message_id == menu.message_id
    assert edited.buttons == (), "editMessageText without reply_markup drops the keyboard"
    assert phone.callback_answers() == [{"text": "Принято"}]


async def test_pressing_a_missing_button_lists_the_visible_ones(
    fake_telegram: FakeTelegram,
) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван")
    async with polling(tg, echo_router()):
        await phone.ask("/start")

    with pytest.raises(HarnessError, match=r"«Отправить».*\n.*\[Да\] \[Нет\]"):
        await phone.press("Отправить")


async def test_wait_timeout_shows_the_screen_and_the_calls(fake_telegram: FakeTelegram) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван")
    async with polling(tg, echo_router()):
        await phone.ask("первое")
        with pytest.raises(WaitTimeout) as failure:
            await phone.wait_for("никогда", timeout=0.2)

    report = str(failure.value)
    assert "'никогда'" in report
    assert "Эхо: первое" in report  # the screen
    assert "sendMessage chat=1001" in report  # the calls


async def test_edit_errors_surface_as_telegram_bad_request(fake_telegram: FakeTelegram) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван", started=True)
    async with bot_only(tg) as bot:
        sent = await bot.send_message(phone.chat_id, "Кв. 12: <b>13305</b>")
        with pytest.raises(TelegramBadRequest, match="message is not modified"):
            await bot.edit_message_text(
                "Кв. 12: <b>13305</b>", chat_id=phone.chat_id, message_id=sent.message_id
            )
        markup = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Ок", callback_data="ok")]]
        )
        await bot.edit_message_reply_markup(
            chat_id=phone.chat_id, message_id=sent.message_id, reply_markup=markup
        )
        with pytest.raises(TelegramBadRequest, match="message is not modified"):
            await bot.edit_message_reply_markup(
                chat_id=phone.chat_id, message_id=sent.message_id, reply_markup=markup
            )
        await bot.delete_message(phone.chat_id, sent.message_id)
        with pytest.raises(TelegramBadRequest, match="message to delete not found"):
            await bot.delete_message(phone.chat_id, sent.message_id)
        with pytest.raises(TelegramBadRequest, match="message to edit not found"):
            await bot.edit_message_text("новый", chat_id=phone.chat_id, message_id=sent.message_id)

    assert phone.screen().messages == (), "a deleted message is gone from the phone"


async def test_bot_cannot_write_first_or_to_a_user_who_blocked_it(
    fake_telegram: FakeTelegram,
) -> None:
    tg = fake_telegram
    stranger = tg.user(2002, "Пётр")
    phone = tg.user(1001, "Иван", started=True)
    async with bot_only(tg) as bot:
        with pytest.raises(TelegramForbiddenError, match="can't initiate conversation"):
            await bot.send_message(stranger.chat_id, "Здравствуйте")
        update = await phone.block_bot()
        with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
            await bot.send_message(phone.chat_id, "Напоминание")

    assert update["my_chat_member"]["new_chat_member"]["status"] == "kicked"
    assert tg.pending_updates()[-1] == update


async def test_callback_query_too_old_or_answered_twice(fake_telegram: FakeTelegram) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван", started=True)
    async with bot_only(tg) as bot:
        markup = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Ок", callback_data="ok")]]
        )
        await bot.send_message(phone.chat_id, "Готово?", reply_markup=markup)
        fresh = await phone.press("Ок")
        await bot.answer_callback_query(fresh["callback_query"]["id"], text="Да")
        with pytest.raises(TelegramBadRequest, match="query is too old"):
            await bot.answer_callback_query(fresh["callback_query"]["id"])

        tg.callback_query_ttl = 0.0  # as if the bot had been down for a while
        stale = await phone.press("Ок")
        with pytest.raises(TelegramBadRequest, match="query is too old"):
            await bot.answer_callback_query(stale["callback_query"]["id"])


async def test_screen_shows_pin_reply_keyboard_and_user_messages(
    fake_telegram: FakeTelegram,
) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван", started=True)
    async with bot_only(tg) as bot:
        keyboard = ReplyKeyboardMarkup(
            keyboard=[[KeyboardButton(text="Передача показаний по дому")]],
            resize_keyboard=True,
        )
        menu = await bot.send_message(phone.chat_id, "Меню", reply_markup=keyboard)
        await bot.pin_chat_message(phone.chat_id, menu.message_id)
        update = await phone.reply_keyboard("Передача показаний по дому")

    screen = phone.screen()
    assert screen.pinned is not None and screen.pinned.text == "Меню"
    assert screen.reply_keyboard == (("Передача показаний по дому",),)
    assert screen.texts() == ["Меню", "Передача показаний по дому"]
    assert update["message"]["text"] == "Передача показаний по дому"
    assert "Передача показаний по дому" in str(screen)


async def test_every_user_action_produces_an_update_aiogram_parses(
    fake_telegram: FakeTelegram,
) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван", "ivan", started=True)
    other = tg.user(1002, "Мария")
    async with bot_only(tg) as bot:
        markup = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Ок", callback_data="ok")]]
        )
        await bot.send_message(phone.chat_id, "Готово?", reply_markup=markup)
        typed = await phone.send("13305")
        updates = [
            typed,
            await phone.send_command("/start", "invite-abc"),
            await phone.send_photo(b"jpeg", caption="счётчик"),
            await phone.send_document("макет.xlsx", b"PK"),
            await phone.send_sticker(),
            await phone.send_voice(),
            await phone.send_contact(),
            await phone.edit(typed, "13306"),
            await phone.forward("Показания кв. 5", from_user=other),
            await phone.forward("Скрытый", from_user="Аноним"),
            await phone.press("Ок"),
            await phone.block_bot(),
        ]
        parsed = [Update.model_validate(u, context={"bot": bot}) for u in updates]

    assert [p.event_type for p in parsed] == [
        "message", "message", "message", "message", "message", "message", "message",
        "edited_message", "message", "message", "callback_query", "my_chat_member",
    ]  # fmt: skip
    command = parsed[1].message
    assert command is not None and command.text == "/start invite-abc"
    assert command.entities is not None and command.entities[0].type == "bot_command"
    assert parsed[7].edited_message is not None
    assert parsed[7].edited_message.text == "13306"
    assert [u["update_id"] for u in updates] == sorted(u["update_id"] for u in updates)


async def test_wait_for_answer_to_a_message_then_nothing_more(
    fake_telegram: FakeTelegram,
) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван")
    async with polling(tg, echo_router()):
        update = await phone.send("13305")
        reaction = await phone.wait_for_answer_to(update)
        await tg.wait_quiet(0.2)

    assert reaction.text == "Эхо: 13305"
    assert reaction.answer is None
    assert tg.count_calls("sendMessage") == 1


async def test_photo_chat_action_pin_and_get_chat(fake_telegram: FakeTelegram) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван", started=True)
    async with bot_only(tg) as bot:
        await bot.send_chat_action(phone.chat_id, "upload_photo")
        with pytest.raises(TelegramBadRequest, match="wrong parameter action"):
            await bot.send_chat_action(phone.chat_id, "dancing")
        photo = await bot.send_photo(
            phone.chat_id, BufferedInputFile(b"\xff\xd8jpeg", "meter.jpg"), caption="Счётчик"
        )
        await bot.pin_chat_message(phone.chat_id, photo.message_id)
        pinned = (await bot.get_chat(phone.chat_id)).pinned_message
        await bot.unpin_chat_message(phone.chat_id)
        unpinned = await bot.get_chat(phone.chat_id)

    [received] = phone.photos()
    assert received.data == b"\xff\xd8jpeg" and received.caption == "Счётчик"
    assert pinned is not None and pinned.message_id == photo.message_id
    assert unpinned.pinned_message is None and unpinned.first_name == "Иван"
    assert phone.screen().pinned is None


# ----------------------------------------------------------------- HTML and limits


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("Показание 5 < 6", 'Unsupported start tag "" at byte offset'),
        ("<b>Кв. 12", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<foo>Кв. 12</foo>", 'Unsupported start tag "foo" at byte offset 0'),
        ("<b>Кв. 12</i>", 'Unmatched end tag at byte offset 11, expected "</b>", found "</i>"'),
        ("ТСЖ «Рога & копыта»", 'Unescaped "&"'),
        ('<a href="https://x.ru>ссылка</a>', "Unclosed start tag"),
        ("x" * 4097, "message is too long"),
        ("   \n ", "message text is empty"),
        ("<b></b>", "message text is empty"),
    ],
)
async def test_html_is_validated_like_telegram(
    fake_telegram: FakeTelegram, text: str, error: str
) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван", started=True)
    async with bot_only(tg) as bot:
        with pytest.raises(TelegramBadRequest) as failure:
            await bot.send_message(phone.chat_id, text)

    assert error in str(failure.value)
    assert phone.screen().messages == ()


def test_html_entities_use_utf16_offsets_and_decode_escapes() -> None:
    text, entities = parse_html(
        '🏠 <b>Дом</b> &lt;5&gt; &amp; <a href="https://e.ru/?a=1&amp;b=2">тут</a>\n'
    )

    assert text == "🏠 Дом <5> & тут"
    assert entities == [
        {"type": "bold", "offset": 3, "length": 3},  # the emoji is two UTF-16 units
        {"type": "text_link", "offset": 13, "length": 3, "url": "https://e.ru/?a=1&b=2"},
    ]
    assert parse_html("T&K", strict_ampersand=False) == ("T&K", [])


async def test_callback_data_over_64_bytes_is_rejected(fake_telegram: FakeTelegram) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван", started=True)
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Кв.", callback_data="квартира" * 5)]]
    )
    async with bot_only(tg) as bot:
        with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
            await bot.send_message(phone.chat_id, "Выберите", reply_markup=markup)


# ----------------------------------------------------------------- faults


async def test_429_surfaces_as_retry_after_and_early_retries_are_recorded(
    fake_telegram: FakeTelegram,
) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван", started=True)
    tg.faults.method("sendMessage").p_429 = 1.0
    async with bot_only(tg) as bot:
        with pytest.raises(TelegramRetryAfter) as throttled:
            await bot.send_message(phone.chat_id, "Принято")
        tg.faults.reset()
        # Too early: the window is still on, Telegram answers 429 again.
        with pytest.raises(TelegramRetryAfter):
            await bot.send_message(phone.chat_id, "Принято")
        # A patient bot waits retry_after (this is the bot's backoff, not a test wait).
        await asyncio.sleep(throttled.value.retry_after)
        await bot.send_message(phone.chat_id, "Принято")

    assert throttled.value.retry_after == 1
    assert len(tg.early_retries()) == 1
    assert tg.early_retries()[0].call.seq == tg.calls_of("sendMessage")[1].seq
    assert [m.text for m in phone.bot_messages()] == ["Принято"]


async def test_group_rate_limit_answers_429_like_telegram(fake_telegram: FakeTelegram) -> None:
    tg = fake_telegram
    group = tg.group(-1001234567890, "Диспетчерская")
    tg.faults.group_limit = RateLimit(max_calls=2, per_seconds=60)
    async with bot_only(tg) as bot:
        await bot.send_message(group.chat_id, "Сводка 1")
        await bot.send_message(group.chat_id, "Сводка 2")
        with pytest.raises(TelegramRetryAfter) as throttled:
            await bot.send_message(group.chat_id, "Сводка 3")

    assert 59 <= throttled.value.retry_after <= 60
    assert tg.throttles[-1].reason == "rate_limit"


async def test_server_errors_and_lost_responses(fake_telegram: FakeTelegram) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван", started=True)
    async with bot_only(tg) as bot:
        tg.faults.method("sendMessage").p_5xx = 1.0
        with pytest.raises(TelegramServerError, match="Bad Gateway"):
            await bot.send_message(phone.chat_id, "раз")
        tg.faults.method("sendMessage").html_5xx = True
        with pytest.raises(ClientDecodeError):
            await bot.send_message(phone.chat_id, "два")
        tg.faults.reset()
        tg.faults.method("sendMessage").p_lost_response = 1.0
        with pytest.raises(TelegramServerError):
            await bot.send_message(phone.chat_id, "три")

    # The lost response still delivered the message: the case that makes retries duplicate.
    assert phone.screen().texts() == ["три"]
    assert [c.status for c in tg.calls_of("sendMessage")] == [502, 502, 502]


# ----------------------------------------------------------------- files


async def test_bot_document_round_trips_to_the_phone(fake_telegram: FakeTelegram) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван", started=True)
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Квартира", "Зав. номер", "Показание"])
    sheet.append(["12", "0123456", "13305"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    xlsx = buffer.getvalue()

    async with bot_only(tg) as bot:
        await bot.send_document(
            phone.chat_id, BufferedInputFile(xlsx, "макет.xlsx"), caption="Макет <b>дома</b>"
        )

    [document] = phone.documents()
    assert document.filename == "макет.xlsx"
    assert document.data == xlsx
    assert document.caption == "Макет дома"
    rows = list(openpyxl.load_workbook(io.BytesIO(document.data)).active.values)  # type: ignore[union-attr]
    assert rows[1] == ("12", "0123456", "13305")


async def test_user_document_is_downloadable_with_get_file(fake_telegram: FakeTelegram) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван")
    data = bytes(range(256)) * 100
    async with polling(tg, echo_router()):
        await phone.send_document("показания.xlsx", data)
        reply = await phone.wait_for("Файл")

    assert reply.text == f"Файл показания.xlsx: {hashlib.sha256(data).hexdigest()}"
    assert tg.count_calls("getFile", ok=True) == 1
    assert len(tg.downloads) == 1


# ----------------------------------------------------------------- groups


async def test_group_commands_privacy_and_anonymous_admin(fake_telegram: FakeTelegram) -> None:
    tg = fake_telegram
    boss = tg.user(1001, "Анна", "anna")
    inspector = tg.user(1002, "Иван")
    group = tg.group(-100123, "Диспетчерская", admins=[boss], members=[inspector])

    bind = await group.post(boss, "/bind@meters_test_bot")
    chatter = await group.post(inspector, "всем привет")
    other_bot = await group.post(inspector, "/bind@other_bot")
    anonymous = await group.post_as_anonymous_admin("/bind")

    pending = [u["update_id"] for u in tg.pending_updates()]
    assert pending == [bind["update_id"], anonymous["update_id"]]
    assert {u["update_id"] for u, _ in tg.dropped_updates} == {
        chatter["update_id"],
        other_bot["update_id"],
    }
    message = anonymous["message"]
    assert message["from"] == GROUP_ANONYMOUS_BOT
    assert message["sender_chat"]["id"] == group.chat_id
    assert [m.text for m in group.screen().messages] == [
        "/bind@meters_test_bot", "всем привет", "/bind@other_bot", "/bind",
    ]  # fmt: skip

    async with bot_only(tg) as bot:
        owner = await bot.get_chat_member(group.chat_id, boss.user_id)
        member = await bot.get_chat_member(group.chat_id, inspector.user_id)
        stranger = tg.user(3003, "Олег")
        outsider = await bot.get_chat_member(group.chat_id, stranger.user_id)
        admins = await bot.get_chat_administrators(group.chat_id)

    assert (owner.status, member.status, outsider.status) == ("creator", "member", "left")
    assert [a.user.id for a in admins] == [boss.user_id]


async def test_group_migration_moves_the_bot_to_the_supergroup(
    fake_telegram: FakeTelegram,
) -> None:
    tg = fake_telegram
    boss = tg.user(1001, "Анна")
    group = tg.group(-100123, "Диспетчерская", admins=[boss])
    old_id = group.chat_id

    to_update, from_update = await group.migrate_to_supergroup(-1001000000123)

    assert to_update["message"]["migrate_to_chat_id"] == -1001000000123
    assert from_update["message"]["migrate_from_chat_id"] == old_id
    assert from_update["message"]["chat"]["type"] == "supergroup"
    async with bot_only(tg) as bot:
        with pytest.raises(TelegramMigrateToChat) as moved:
            await bot.send_message(old_id, "Сводка")
        await bot.send_message(moved.value.migrate_to_chat_id, "Сводка")

    assert "group chat was upgraded to a supergroup chat" in str(moved.value)
    assert group.chat_id == -1001000000123
    assert group.last_bot_message() is not None


async def test_adding_the_bot_sends_my_chat_member(fake_telegram: FakeTelegram) -> None:
    tg = fake_telegram
    boss = tg.user(1001, "Анна")
    group = tg.group(-100777, "Новая", admins=[boss], bot_in_group=False)
    async with bot_only(tg) as bot:
        with pytest.raises(TelegramForbiddenError, match="bot is not a member"):
            await bot.send_message(group.chat_id, "Привет")
        update = await group.add_bot()
        await bot.send_message(group.chat_id, "Привет")

    kinds = [next(k for k in u if k != "update_id") for u in tg.pending_updates()]
    assert kinds == ["my_chat_member", "message"]
    assert update["my_chat_member"]["new_chat_member"]["status"] == "member"
    assert update["my_chat_member"]["from"]["id"] == boss.user_id


# ----------------------------------------------------------------- wire format


async def test_wire_format_tokens_methods_and_body_encodings(fake_telegram: FakeTelegram) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван", started=True)

    unauthorized = await raw_call(tg, "getMe", token="654321:" + "b" * 35)
    missing = await raw_call(tg, "sendMessageNow")
    as_json = await raw_call(tg, "sendMessage", json={"chat_id": 1001, "text": "123"})
    as_form = await raw_call(tg, "SENDMESSAGE", data={"chat_id": "1001", "text": "true"})
    not_modelled = await raw_call(tg, "setChatTitle", json={"chat_id": 1001, "title": "x"})

    assert unauthorized == (401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    assert missing == (404, {"ok": False, "error_code": 404, "description": "Not Found"})
    assert as_json[0] == as_form[0] == 200
    assert as_json[1]["result"]["text"] == "123", "text stays text even if it looks like JSON"
    assert as_form[1]["result"]["text"] == "true"
    assert not_modelled == (200, {"ok": True, "result": True})
    assert [c.method for c in tg.unknown_calls] == ["setChatTitle"]
    assert phone.screen().texts() == ["123", "true"]
    method, params, at, chat_id = tg.calls_of("sendMessage")[1]
    assert (method, params["chat_id"], chat_id) == ("sendMessage", 1001, 1001)
    assert at >= tg.started_at


async def test_commands_and_webhook_settings(fake_telegram: FakeTelegram) -> None:
    tg = fake_telegram
    async with bot_only(tg) as bot:
        me = await bot.get_me()
        await bot.set_my_commands([BotCommand(command="start", description="Начать")])
        commands = await bot.get_my_commands()
        await bot.delete_webhook(drop_pending_updates=False)
        assert not tg.asked_to_drop_pending
        await bot.delete_webhook(drop_pending_updates=True)
        await bot.delete_my_commands()
        info = await bot.get_webhook_info()

    assert (me.username, me.id) == ("meters_test_bot", 123456)
    assert [(c.command, c.description) for c in commands] == [("start", "Начать")]
    assert tg.sent_commands() == []
    assert tg.asked_to_drop_pending
    assert info.url == ""


# ----------------------------------------------------------------- webhooks


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/webhook"


async def test_webhook_delivers_with_the_secret_header(fake_telegram: FakeTelegram) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван")
    bot = make_bot(tg)
    dispatcher = Dispatcher()
    dispatcher.include_router(echo_router())
    app = web.Application()
    SimpleRequestHandler(dispatcher, bot, secret_token="s3cret-Token_1").register(app, "/webhook")
    runner, url = await _serve(app)
    try:
        await bot.set_webhook(url, secret_token="s3cret-Token_1")
        reply = await phone.ask("/start")
        with pytest.raises(TelegramConflictError):
            await bot.get_updates(timeout=0)
        await bot.delete_webhook()
    finally:
        await runner.cleanup()

    assert reply.text == "Привет, Иван! Начнём?"
    assert [d.status for d in tg.webhook_deliveries] == [200]


async def test_webhook_is_redelivered_until_the_receiver_answers_2xx(
    fake_telegram: FakeTelegram,
) -> None:
    tg = fake_telegram
    phone = tg.user(1001, "Иван")
    received: list[tuple[str | None, int]] = []

    async def receiver(request: web.Request) -> web.Response:
        update = await request.json()
        received.append(
            (request.headers.get("X-Telegram-Bot-Api-Secret-Token"), update["update_id"])
        )
        return web.Response(status=500 if len(received) <= 2 else 200)

    app = web.Application()
    app.router.add_post("/webhook", receiver)
    runner, url = await _serve(app)
    try:
        status, _ = await raw_call(tg, "setWebhook", data={"url": url, "secret_token": "abc"})
        update = await phone.send("13305")
        await tg.wait_all_confirmed()
        _, info = await raw_call(tg, "getWebhookInfo")
    finally:
        await runner.cleanup()

    assert status == 200
    assert received == [("abc", update["update_id"])] * 3
    assert [d.status for d in tg.webhook_deliveries] == [500, 500, 200]
    assert info["result"]["last_error_message"].startswith("Wrong response from the webhook: 500")


# ----------------------------------------------------------------- the bot as a process

ECHO_SCRIPT = textwrap.dedent(
    """
    import asyncio, logging, os, sys

    if os.environ.get("CRASH_AT_START"):  # before importing aiogram, which is slow
        print("crashing on purpose", flush=True)
        sys.exit(3)

    from aiogram import Bot, Dispatcher
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.types import Message

    async def main() -> None:
        logging.basicConfig(level=logging.INFO)
        print("leaked:", os.environ.get("HARNESS_PARENT_ONLY"), flush=True)
        api = TelegramAPIServer.from_base(os.environ["TELEGRAM_API_URL"])
        bot = Bot(os.environ["BOT_TOKEN"], session=AiohttpSession(api=api))
        dp = Dispatcher()

        @dp.message()
        async def echo(message: Message) -> None:
            await message.answer(f"echo: {message.text}")

        await dp.start_polling(bot, polling_timeout=5)

    asyncio.run(main())
    """
)


@pytest.mark.duration(15)
async def test_bot_process_runs_answers_and_stops_on_sigterm(
    fake_telegram: FakeTelegram,
    start_bot: StartBot,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tg = fake_telegram
    script = tmp_path / "echo_bot.py"
    script.write_text(ECHO_SCRIPT)
    monkeypatch.setenv("HARNESS_PARENT_ONLY", "secret-of-the-developer")
    phone = tg.user(1001, "Иван")

    bot = await start_bot(args=[str(script)], cwd=tmp_path)
    reply = await phone.ask("13305")
    await bot.wait_for_log("Start polling")
    result = await bot.stop()

    assert reply.text == "echo: 13305"
    assert "leaked: None" in bot.log, "the parent's environment must not reach the bot"
    assert result.returncode == 0 and not result.killed
    assert result.seconds < 10
    assert (tmp_path / "bot-1.log").read_text() == bot.log


async def test_bot_process_crash_fails_waits_at_once(
    fake_telegram: FakeTelegram, bot_env: dict[str, str], tmp_path: Path
) -> None:
    tg = fake_telegram
    script = tmp_path / "echo_bot.py"
    script.write_text(ECHO_SCRIPT)
    phone = tg.user(1001, "Иван")

    async with BotProcess(
        {**bot_env, "CRASH_AT_START": "1"}, args=[str(script)], cwd=tmp_path
    ) as bot:
        tg.watch(bot)
        with pytest.raises(BotDied, match=r"exited with code 3[\s\S]*crashing on purpose"):
            await phone.ask("13305", timeout=60)
        assert await bot.wait_exit() == 3


async def test_bot_process_kill9(bot_env: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "sleeper.py"
    script.write_text("import time\nprint('ready', flush=True)\ntime.sleep(60)\n")

    async with BotProcess(bot_env, args=[str(script)], cwd=tmp_path) as bot:
        await bot.wait_for_log("ready")
        bot.kill9()
        code = await bot.wait_exit()

    assert code == -9
    assert bot.unexpected_exit() is None, "a kill the test asked for is no surprise"


def test_bot_token_passes_the_settings_check_but_is_not_real() -> None:
    assert re.match(r"^\d{5,20}:[A-Za-z0-9_-]{30,64}$", BOT_TOKEN)
    assert len(BOT_TOKEN.split(":")[0]) < 8, "real bot ids are longer"
    assert sys.executable  # BotProcess runs the same interpreter as the tests
    assert json.dumps(BOT_TOKEN)
