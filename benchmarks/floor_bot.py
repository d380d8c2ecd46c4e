"""The floor: the least a bot can do per reading, in three strengths.

All answer a typed value as the bot does: the chat's card is edited (sent the first
time) with a button on it and the typed message is deleted, the two Bot API calls the
issue allows a reading. There are no sessions, no ORM, no FSM framework and no
middlewares.

- FLOOR_KIND=minimal: the value is committed, then the two calls. Nothing else.
- FLOOR_KIND=durable: the work a reading needs under this product's rules, and no
  more. The update is stored before it is handled (nothing typed is lost), the
  sender's access is read (a revoked inspector is refused at once), the slot is read
  and its value committed before the answer, the next open slot and the draft's
  counts are read for the card, and after the answer the chat's state is stored
  with the update's done mark (a crash replays what was not marked).
- FLOOR_KIND=stack: the durable floor's statements, transactions and order, run
  through the project's mandated stack instead of sqlite3: a SQLAlchemy async
  engine on aiosqlite (with the bot's driver, storage/sqlite_driver.py), text()
  statements built once, one AsyncConnection. What the stack itself costs a reading.

minimal and durable run hand-written SQL on sqlite3 (WAL, synchronous=FULL:
acknowledged means stored) in one worker thread, so the loop never waits on disk.
Their CPU per update against the echo bot's, measured in the same run, shows how
close to the echo any implementation of a reading can come on this machine.

    BOT_TOKEN=... TELEGRAM_API_URL=http://127.0.0.1:PORT FLOOR_DB=/tmp/floor.db \
        FLOOR_KIND=durable PYTHONPATH=. python benchmarks/floor_bot.py
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import html
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, Protocol, TypeVar

import uvloop
from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="Пропустить", callback_data="skip")]]
)
SLOTS_PER_DRAFT = 24  # a 20-apartment building, as the benchmark's small database

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS reading (chat_id INTEGER, message_id INTEGER, value TEXT)",
    "CREATE TABLE IF NOT EXISTS inbox (update_id INTEGER PRIMARY KEY, payload TEXT, done INTEGER)",
    "CREATE TABLE IF NOT EXISTS user (id INTEGER PRIMARY KEY, account TEXT, revoked INTEGER)",
    "CREATE TABLE IF NOT EXISTS slot ("
    " draft INTEGER, position INTEGER, value TEXT, status TEXT, PRIMARY KEY (draft, position))",
    "CREATE TABLE IF NOT EXISTS fsm (key TEXT PRIMARY KEY, data TEXT)",
)
PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL")

S = TypeVar("S")
T = TypeVar("T")


class Statements(NamedTuple, Generic[S]):
    """A reading's statements. Named parameters: sqlite3 and SQLAlchemy's text() alike."""

    insert_reading: S
    insert_update: S
    select_access: S
    insert_user: S
    insert_slot: S
    select_slot: S
    update_slot: S
    select_next_slot: S
    select_counts: S
    upsert_state: S
    mark_done: S


SQL = Statements(
    insert_reading="INSERT INTO reading VALUES (:chat_id, :message_id, :value)",
    insert_update="INSERT OR IGNORE INTO inbox VALUES (:update_id, :payload, 0)",
    select_access="SELECT revoked FROM user WHERE id = :user_id",
    insert_user="INSERT INTO user VALUES (:user_id, 'account', NULL)",
    insert_slot="INSERT INTO slot VALUES (:draft, :position, NULL, 'empty')",
    select_slot="SELECT * FROM slot WHERE draft = :draft AND position = :position",
    update_slot="UPDATE slot SET value = :value, status = 'filled' "
    "WHERE draft = :draft AND position = :position",
    select_next_slot="SELECT * FROM slot WHERE draft = :draft AND position > :position "
    "AND status = 'empty' ORDER BY position LIMIT 1",
    select_counts="SELECT status, count(*) FROM slot WHERE draft = :draft GROUP BY status",
    upsert_state="INSERT INTO fsm VALUES (:key, :data) "
    "ON CONFLICT (key) DO UPDATE SET data = excluded.data",
    mark_done="UPDATE inbox SET done = 1 WHERE update_id = :update_id",
)


class Connection(Protocol):
    """What a reading's work needs of a connection: sqlite3's, or SQLAlchemy's Connection."""

    def execute(self, statement: Any, parameters: Any, /) -> Any: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


class Ledger:
    """A reading's work, written once for every strength: its statements, transactions
    and their order. Both drivers begin a transaction at the first write (sqlite3's
    default), so reads outside `_transaction()` hold nothing, for either."""

    def __init__(
        self, db: Connection, sql: Statements[Any], execute_many: Callable[[Any, Any], Any]
    ) -> None:
        self.db = db
        self.sql = sql
        self.execute_many = execute_many  # sqlite3's executemany; SQLAlchemy's execute

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """Committed at the end, rolled back on an error (sqlite3's `with connection:`)."""
        try:
            yield
        except BaseException:
            self.db.rollback()
            raise
        self.db.commit()

    def store_value(self, chat_id: int, message_id: int, value: str) -> None:
        with self._transaction():
            self.db.execute(
                self.sql.insert_reading,
                {"chat_id": chat_id, "message_id": message_id, "value": value},
            )

    def enter(
        self, update_id: int, payload: str, user_id: int, position: int, value: str
    ) -> list[Any]:
        """The update stored; access, the slot read and written, the next slot and the
        counts (the card's data). One call of the store's run() for all of it."""
        db, sql = self.db, self.sql
        slot = {"draft": user_id, "position": position}
        with self._transaction():
            db.execute(sql.insert_update, {"update_id": update_id, "payload": payload})
        if db.execute(sql.select_access, {"user_id": user_id}).fetchone() is None:
            with self._transaction():  # the first reading of the run: the user and a draft
                db.execute(sql.insert_user, {"user_id": user_id})
                self.execute_many(
                    sql.insert_slot,
                    [{"draft": user_id, "position": p} for p in range(SLOTS_PER_DRAFT)],
                )
        with self._transaction():
            db.execute(sql.select_slot, slot).fetchone()
            db.execute(sql.update_slot, {**slot, "value": value})
        db.execute(sql.select_next_slot, slot).fetchone()
        rows: list[Any] = db.execute(sql.select_counts, {"draft": user_id}).fetchall()
        return rows

    def mark_done(self, update_id: int, chat_id: int, state: str) -> None:
        with self._transaction():
            self.db.execute(self.sql.upsert_state, {"key": str(chat_id), "data": state})
            self.db.execute(self.sql.mark_done, {"update_id": update_id})


class Store:
    """One SQLite connection, used from one worker thread."""

    def __init__(self, path: str) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="floor-db")
        db = self._worker.submit(self._open, path).result()
        self._ledger = Ledger(db, SQL, db.executemany)

    @staticmethod
    def _open(path: str) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False)
        for pragma in PRAGMAS:
            db.execute(pragma)
        db.executescript(";".join(SCHEMA))
        return db

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """`work(ledger, *args)` in the worker thread: one hand-off."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, work, self._ledger, *args)


class StackStore:
    """The same work through the mandated stack: one AsyncConnection of a SQLAlchemy
    async engine on aiosqlite, text() statements built once.

    run_sync() runs a reading's statements in one greenlet, each awaiting aiosqlite's
    thread; awaiting AsyncConnection.execute() per statement costs a greenlet each.
    """

    def __init__(self, connection: AsyncConnection, ledger: Ledger) -> None:
        self._connection = connection
        self._ledger = ledger
        self._lock = asyncio.Lock()  # one connection: two readings' transactions never mix

    @classmethod
    async def open(cls, path: str) -> StackStore:
        # Imported here: the sqlite3 strengths carry no SQLAlchemy (memory, start-up).
        from sqlalchemy import event, make_url, text
        from sqlalchemy.ext.asyncio import create_async_engine

        from storage.sqlite_driver import connector

        url = make_url(f"sqlite+aiosqlite:///{path}")
        engine = create_async_engine(url, async_creator=connector(url))
        event.listen(engine.sync_engine, "connect", _set_pragmas)
        connection = await engine.connect()
        for statement in SCHEMA:
            await connection.execute(text(statement))
        await connection.commit()
        sync = connection.sync_connection
        assert sync is not None
        statements = Statements(*(text(sql) for sql in SQL))
        return cls(connection, Ledger(sync, statements, sync.execute))

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """`work(ledger, *args)` in one greenlet, one reading at a time."""
        async with self._lock:
            return await self._connection.run_sync(lambda _sync: work(self._ledger, *args))


def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


class Floor:
    def __init__(self, store: Store | StackStore, durable: bool) -> None:
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
                Ledger.enter, event_update.update_id, payload, chat_id, position, value
            )
            progress = ", ".join(f"{status}: {n}" for status, n in by_status)
        else:
            await self.store.run(Ledger.store_value, chat_id, message.message_id, value)
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
            await self.store.run(Ledger.mark_done, event_update.update_id, chat_id, state)


async def main() -> None:
    kind, path = os.environ.get("FLOOR_KIND", "minimal"), os.environ["FLOOR_DB"]
    store = await StackStore.open(path) if kind == "stack" else Store(path)
    floor = Floor(store, durable=kind in ("durable", "stack"))
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
    gc.freeze()  # as bot.py does once started: full collections skip the imports
    await dispatcher.start_polling(bot, handle_signals=True, close_bot_session=True)


if __name__ == "__main__":
    uvloop.run(main())  # the bot's event loop, as bot.py runs it
