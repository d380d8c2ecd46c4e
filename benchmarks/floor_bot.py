"""The floor: the least a bot can do per reading, in two strengths.

Both answer a typed value as the bot does: the chat's card is edited (sent the first
time) with a button on it and the typed message is deleted, the two Bot API calls the
issue allows a reading. SQL is hand-written on sqlite3 (WAL, synchronous=FULL:
acknowledged means stored), run in one worker thread so the loop never waits on disk.
There are no sessions, no ORM, no FSM framework and no middlewares.

- FLOOR_KIND=minimal: the value is committed, then the two calls. Nothing else.
- FLOOR_KIND=durable: the work a reading needs under this product's rules, and no
  more. The update is stored before it is handled (nothing typed is lost), the
  sender's access is read (a revoked inspector is refused at once), the slot is read
  and its value committed before the answer, the next open slot and the draft's
  counts are read for the card, and after the answer the chat's state is stored
  with the update's done mark (a crash replays what was not marked).

Their CPU per update against the echo bot's, measured in the same run, shows how
close to the echo any implementation of a reading can come on this machine.

    BOT_TOKEN=... TELEGRAM_API_URL=http://127.0.0.1:PORT FLOOR_DB=/tmp/floor.db \
        FLOOR_KIND=durable python benchmarks/floor_bot.py
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update

KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="Пропустить", callback_data="skip")]]
)
SLOTS_PER_DRAFT = 24  # a 20-apartment building, as the benchmark's small database

SCHEMA = """
CREATE TABLE IF NOT EXISTS reading (chat_id INTEGER, message_id INTEGER, value TEXT);
CREATE TABLE IF NOT EXISTS inbox (update_id INTEGER PRIMARY KEY, payload TEXT, done INTEGER);
CREATE TABLE IF NOT EXISTS user (id INTEGER PRIMARY KEY, account TEXT, revoked INTEGER);
CREATE TABLE IF NOT EXISTS slot (
    draft INTEGER, position INTEGER, value TEXT, status TEXT, PRIMARY KEY (draft, position)
);
CREATE TABLE IF NOT EXISTS fsm (key TEXT PRIMARY KEY, data TEXT);
"""


class Store:
    """One SQLite connection, used from one worker thread."""

    def __init__(self, path: str) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="floor-db")
        self._db = self._worker.submit(self._open, path).result()

    @staticmethod
    def _open(path: str) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
        return db

    async def run(self, work: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._worker, work, *args)

    def store_value(self, chat_id: int, message_id: int, value: str) -> None:
        with self._db:  # one transaction, committed
            self._db.execute("INSERT INTO reading VALUES (?, ?, ?)", (chat_id, message_id, value))

    def enter(
        self, update_id: int, payload: str, user_id: int, position: int, value: str
    ) -> list[tuple[str, int]]:
        """The update stored; access, the slot read and written, the next slot and the
        counts (the card's data). One hand-off to the worker thread for all of it."""
        db = self._db
        with db:
            db.execute("INSERT OR IGNORE INTO inbox VALUES (?, ?, 0)", (update_id, payload))
        if db.execute("SELECT revoked FROM user WHERE id = ?", (user_id,)).fetchone() is None:
            with db:  # the first reading of the run: the user and a draft
                db.execute("INSERT INTO user VALUES (?, 'account', NULL)", (user_id,))
                db.executemany(
                    "INSERT INTO slot VALUES (?, ?, NULL, 'empty')",
                    [(user_id, p) for p in range(SLOTS_PER_DRAFT)],
                )
        with db:
            db.execute(
                "SELECT * FROM slot WHERE draft = ? AND position = ?", (user_id, position)
            ).fetchone()
            db.execute(
                "UPDATE slot SET value = ?, status = 'filled' WHERE draft = ? AND position = ?",
                (value, user_id, position),
            )
        db.execute(
            "SELECT * FROM slot WHERE draft = ? AND position > ? AND status = 'empty' "
            "ORDER BY position LIMIT 1",
            (user_id, position),
        ).fetchone()
        return db.execute(
            "SELECT status, count(*) FROM slot WHERE draft = ? GROUP BY status", (user_id,)
        ).fetchall()

    def mark_done(self, update_id: int, chat_id: int, state: str) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO fsm VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET data = excluded.data",
                (str(chat_id), state),
            )
            self._db.execute("UPDATE inbox SET done = 1 WHERE update_id = ?", (update_id,))


class Floor:
    def __init__(self, store: Store, durable: bool) -> None:
        self.store = store
        self.durable = durable
        self.cards: dict[int, int] = {}  # chat id → the card's message id
        self.counts: dict[int, int] = {}

    async def reading(self, message: Message, bot: Bot, event_update: Update) -> None:
        chat_id = message.chat.id
        value = message.text or ""
        count = self.counts[chat_id] = self.counts.get(chat_id, 0) + 1
        if self.durable:
            payload = event_update.model_dump_json(exclude_none=True, by_alias=True)
            position = (count - 1) % SLOTS_PER_DRAFT
            by_status = await self.store.run(
                self.store.enter, event_update.update_id, payload, chat_id, position, value
            )
            progress = ", ".join(f"{status}: {n}" for status, n in by_status)
        else:
            await self.store.run(self.store.store_value, chat_id, message.message_id, value)
            progress = ""
        text = f"Показание {count}: <b>{html.escape(value)}</b> {progress}"
        card = self.cards.get(chat_id)
        if card is None:
            sent = await bot.send_message(chat_id, text, reply_markup=KEYBOARD)
            card = self.cards[chat_id] = sent.message_id
        else:
            await bot.edit_message_text(
                text=text, chat_id=chat_id, message_id=card, reply_markup=KEYBOARD
            )
        await bot.delete_message(chat_id, message.message_id)
        if self.durable:
            state = json.dumps({"card_id": card, "position": count % SLOTS_PER_DRAFT})
            await self.store.run(self.store.mark_done, event_update.update_id, chat_id, state)


async def main() -> None:
    floor = Floor(Store(os.environ["FLOOR_DB"]), os.environ.get("FLOOR_KIND") == "durable")
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
