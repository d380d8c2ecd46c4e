"""The floor: the least any bot can do per reading and still keep the product's rules.

Per message it does what a reading needs and nothing else: the value is committed
to an SQLite file (WAL, synchronous=FULL: acknowledged means stored) before the
answer, then two Bot API calls, the budget the issue allows a reading: the chat's
card is edited (sent the first time) with a button on it, and the typed message is
deleted. No sessions, no FSM, no access check, no ORM, no inbox.

Its CPU per update against the echo bot's, measured in the same run, shows how
close to the echo any implementation of a reading can come on this machine.

    BOT_TOKEN=... TELEGRAM_API_URL=http://127.0.0.1:PORT FLOOR_DB=/tmp/floor.db \
        python benchmarks/floor_bot.py
"""

from __future__ import annotations

import asyncio
import html
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message

KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="Пропустить", callback_data="skip")]]
)


class Readings:
    """One SQLite connection, used from one worker thread: the loop never waits on disk."""

    def __init__(self, path: str) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="floor-db")
        self._connection = self._worker.submit(self._open, path).result()

    @staticmethod
    def _open(path: str) -> sqlite3.Connection:
        connection = sqlite3.connect(path, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute(
            "CREATE TABLE IF NOT EXISTS reading (chat_id INTEGER, message_id INTEGER, value TEXT)"
        )
        return connection

    def _store(self, chat_id: int, message_id: int, value: str) -> None:
        with self._connection:  # one transaction, committed
            self._connection.execute(
                "INSERT INTO reading VALUES (?, ?, ?)", (chat_id, message_id, value)
            )

    async def store(self, chat_id: int, message_id: int, value: str) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._worker, self._store, chat_id, message_id, value)


class Floor:
    def __init__(self, readings: Readings) -> None:
        self.readings = readings
        self.cards: dict[int, int] = {}  # chat id → the card's message id
        self.counts: dict[int, int] = {}

    async def reading(self, message: Message, bot: Bot) -> None:
        chat_id = message.chat.id
        value = message.text or ""
        await self.readings.store(chat_id, message.message_id, value)
        count = self.counts[chat_id] = self.counts.get(chat_id, 0) + 1
        text = f"Показание {count}: <b>{html.escape(value)}</b>"
        card = self.cards.get(chat_id)
        if card is None:
            sent = await bot.send_message(chat_id, text, reply_markup=KEYBOARD)
            self.cards[chat_id] = sent.message_id
        else:
            await bot.edit_message_text(
                text=text, chat_id=chat_id, message_id=card, reply_markup=KEYBOARD
            )
        await bot.delete_message(chat_id, message.message_id)


async def main() -> None:
    floor = Floor(Readings(os.environ["FLOOR_DB"]))
    router = Router(name="floor")
    router.message.register(floor.reading)
    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    session = AiohttpSession(api=TelegramAPIServer.from_base(os.environ["TELEGRAM_API_URL"]))
    bot = Bot(
        token=os.environ["BOT_TOKEN"],
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )
    await dispatcher.start_polling(bot, handle_signals=True, close_bot_session=True)


if __name__ == "__main__":
    asyncio.run(main())
