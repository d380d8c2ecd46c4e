"""Fault injection against billing: nothing lost, nothing sent twice.

Billing is the reference server (billing_client/server.py) over real HTTP on
127.0.0.1, with its fault injection; its own database is where effects are
counted. Each test asserts its figure and prints it (`-s` shows the lines).

    .venv/bin/python -m pytest tests/reliability/test_billing_faults.py -q -s

SOAK=N (N > 1; or RELIABILITY_SOAK=1) runs the long version (more submissions and kill runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from aiohttp import web
from pydantic import SecretStr
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from billing_client.embedded import EmbeddedBilling
from billing_client.embedded.models import ReadingRow, SubmissionRow
from billing_client.errors import BillingUnavailable
from billing_client.factory import open_embedded_billing
from billing_client.http import HttpBilling
from billing_client.server import Fault, Faults, create_app
from services import submission, walk
from services.breaker import CircuitBreaker
from services.credentials import CredentialsProvider
from services.outbox import Outbox, OutboxPolicy
from services.submission import BatchResult, RetryPolicy
from settings import BillingSettings
from storage.crypto import Vault
from storage.engine import create_engine, create_session_pool
from storage.migrate import upgrade_database
from storage.models import Account, Draft, DraftSlot, SlotStatus, Submission, SubmissionStatus
from tests.conftest import App
from tests.flows.walking import open_building
from tests.flows.walking import slots as slot_rows
from tests.harness.fake_telegram import FakeTelegram
from tests.harness.hashing import fast_hasher
from tests.harness.phone import Phone
from tests.harness.process import StartBot

SOAK = (
    os.environ.get("RELIABILITY_SOAK", "").strip() not in ("", "0")
    or int(os.environ.get("SOAK", "1") or 1) > 1
)
SECRET_KEY = "test-secret-key-test-secret-key"


def report(figure: str) -> None:
    print(f"\nRELIABILITY {figure}")


# --- billing: the reference server with faults, and its own database ----------------


@dataclass
class BillingServer:
    url: str
    backend: EmbeddedBilling
    faults: Faults
    engine: AsyncEngine  # billing's own database, where effects are counted


class MixedFaults(Faults):
    """Random 5xx half before billing did the work, half after it committed it."""

    def pick(self, route: str) -> Fault | None:
        fault = super().pick(route)
        if fault is not None and fault.kind == "error":
            return Fault.error(fault.status, after_commit=self._random.random() < 0.5)
        return fault


@contextlib.asynccontextmanager
async def serve_billing(path: Path, faults: Faults) -> AsyncIterator[BillingServer]:
    settings = BillingSettings(
        _env_file=None,
        BILLING_DATABASE_URL=f"sqlite+aiosqlite:///{path}",
        BILLING_URL=None,
    )
    backend = await open_embedded_billing(settings, password_hasher=fast_hasher())
    runner = web.AppRunner(create_app(backend, faults=faults), shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    engine = create_engine(settings.BILLING_DATABASE_URL)
    try:
        yield BillingServer(f"http://127.0.0.1:{port}/api/v1", backend, faults, engine)
    finally:
        faults.release()
        await runner.cleanup()
        await backend.close()
        await engine.dispose()


@dataclass(frozen=True)
class Effects:
    submissions: int  # POSTs billing accepted (one per idempotency key)
    readings: int  # accepted readings billing holds
    duplicates: int  # a meter accepted by more than one submission (each is entered once)


async def billing_effects(engine: AsyncEngine) -> Effects:
    async with engine.connect() as connection:
        responses = (await connection.execute(select(SubmissionRow.response))).scalars().all()
        readings = await connection.scalar(select(func.count(ReadingRow.id)))
    per_meter: Counter[str] = Counter()
    for response in responses:
        per_meter.update(json.loads(response)["accepted"])
    duplicates = sum(count - 1 for count in per_meter.values())
    return Effects(len(responses), int(readings or 0), duplicates)


# --- 100 submissions through timeouts after commit and random 5xx --------------------


async def link_demo_account(
    pool: async_sessionmaker[AsyncSession], backend: EmbeddedBilling, vault: Vault
) -> tuple[str, str]:
    """The demo account linked in the bot's database; (account id, billing token)."""
    login = await backend.login("demo", SecretStr("demo"))
    async with pool() as session:
        session.add(
            Account(
                id=login.account.id,
                name=login.account.name,
                login="demo",
                password_encrypted=vault.encrypt("demo"),
            )
        )
        await session.commit()
    return login.account.id, login.token


async def open_slots(
    pool: async_sessionmaker[AsyncSession],
    backend: EmbeddedBilling,
    account_id: str,
    token: str,
    wanted: int,
) -> list[tuple[int, int]]:
    """Open demo buildings until `wanted` slots exist: (draft id, position) each."""
    found: list[tuple[int, int]] = []
    for building in (await backend.buildings_with_token(token)).buildings:
        meters = await backend.meters_with_token(token, building.id)
        async with pool() as session:
            await walk.open_building(
                session,
                account_id=account_id,
                building=building,
                meters=meters,
                now=datetime.now(UTC),
            )
            rows = await session.execute(
                select(DraftSlot.draft_id, DraftSlot.position).order_by(
                    DraftSlot.draft_id, DraftSlot.position
                )
            )
        found = [(draft_id, position) for draft_id, position in rows.all()]
        if len(found) >= wanted:
            return found[:wanted]
    raise AssertionError(f"the demo has fewer than {wanted} slots")


async def fill_and_batch(
    pool: async_sessionmaker[AsyncSession], slots: list[tuple[int, int]], *, chat_id: int
) -> int:
    """Give these slots a value billing accepts and write them as one batch."""
    async with pool() as session:
        for draft_id, position in slots:
            row = (
                await session.execute(
                    select(DraftSlot).where(
                        DraftSlot.draft_id == draft_id, DraftSlot.position == position
                    )
                )
            ).scalar_one()
            row.value = row.previous_value or "1"
            row.status = SlotStatus.FILLED
            row.entered_at = datetime.now(UTC)
        await session.commit()
        batch = await submission.create_batch(
            session, draft_id=slots[0][0], user_id=chat_id, chat_id=chat_id, now=datetime.now(UTC)
        )
    assert batch is not None
    return batch


@pytest.mark.duration(15)
async def test_submissions_through_timeouts_after_commit_and_random_5xx(tmp_path: Path) -> None:
    count = 300 if SOAK else 100
    per_batch = 2
    faults = MixedFaults(error_rate=0.3, delay_rate=0.15, delay_seconds=10.0, seed=6)
    async with serve_billing(tmp_path / "billing.db", faults) as server:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
        await upgrade_database(engine)
        pool = create_session_pool(engine)
        vault = Vault.from_setting(SECRET_KEY)
        account_id, token = await link_demo_account(pool, server.backend, vault)
        slots = await open_slots(pool, server.backend, account_id, token, count * per_batch)
        # A short client timeout: a delayed answer is a timeout after billing committed.
        http = HttpBilling(
            server.url, connect_timeout=2.0, total_timeout=2.0, retries=1, backoff_base=0.01
        )
        told: list[BatchResult] = []
        hooked: list[int] = []
        all_told = asyncio.Event()

        async def notify(result: BatchResult) -> None:
            told.append(result)
            if len(told) == count:
                all_told.set()

        async def hook(submission_id: int) -> None:
            hooked.append(submission_id)

        outbox = Outbox(
            pool,
            http,
            CredentialsProvider(vault),
            policy=OutboxPolicy(retry=RetryPolicy(base=0.05, ceiling=0.5), lease=10, concurrency=8),
            breaker=CircuitBreaker(threshold=8, cooldown=0.2),
            on_finished=[hook],
        )
        outbox.start(notify)
        try:
            # Same-draft batches: consecutive slots of one draft at a time.
            for index in range(count):
                chunk = slots[index * per_batch : (index + 1) * per_batch]
                if chunk[0][0] != chunk[-1][0]:
                    chunk = chunk[:1]
                await fill_and_batch(pool, chunk, chat_id=1000 + index)
                outbox.wake()
            await asyncio.wait_for(all_told.wait(), timeout=240 if SOAK else 120)
        finally:
            await outbox.stop()
            await http.close()
        async with pool() as session:
            rows = (await session.execute(select(Submission))).scalars().all()
        await engine.dispose()
        effects = await billing_effects(server.engine)
    statuses = Counter(row.status for row in rows)
    sent = statuses[SubmissionStatus.SENT]
    failed = statuses[SubmissionStatus.FAILED]
    readings_sent = sum(row.accepted_count for row in rows)
    report(
        f"billing faults: {count} submissions, {faults.hits['submit']} POSTs "
        f"(30% random 5xx, 15% timeouts after commit): sent {sent}, reported failed {failed}, "
        f"duplicate effects {effects.duplicates}, inspectors told {len(told)}"
    )
    assert effects.duplicates == 0
    assert sent + failed == count, statuses
    assert len(told) == count and len(set(hooked)) == count
    assert all(row.notified_at is not None for row in rows)
    assert effects.submissions == sent, "one billing submission per sent batch, no more"
    assert effects.readings == readings_sent
    assert faults.hits["submit"] > count, "faults were injected and retried"


# --- the in-process bot against the reference server ----------------------------------


@pytest.fixture
async def billing(tmp_path: Path) -> AsyncIterator[BillingServer]:
    async with serve_billing(tmp_path / "billing-server.db", Faults(seed=3)) as server:
        yield server


@pytest.fixture
def app_overrides(billing: BillingServer) -> dict[str, object]:
    return {
        "BILLING_URL": billing.url,
        "BILLING_TIMEOUT": 2.0,
        "BILLING_RETRIES": 0,
        "OUTBOX_RETRY_BASE": 0.2,
        "OUTBOX_RETRY_MAX": 1.0,
        "BILLING_BREAKER_FAILURES": 2,
        "BILLING_BREAKER_COOLDOWN": 1.0,
    }


async def type_value(phone: Phone, app: App, position: int) -> None:
    """Type an acceptable value for the slot the card shows (`position`, 0-based)."""
    value = (await slot_rows(app))[position].previous_value or "1"
    await phone.ask(value, until=f"Прибор {position + 2} из")


async def test_billing_down_for_a_while_data_entry_goes_on_and_the_outbox_drains(
    app: App, billing: BillingServer
) -> None:
    sender = await open_building(app, user_id=2001)
    await type_value(sender, app, 0)
    walker = await open_building(app, user_id=2002)  # at the next empty meter

    billing.faults.error_rate, billing.faults.error_after_commit = 1.0, False  # billing is down
    outage = billing.faults.hits["submit"]
    await sender.tap("Отправить", until="Не все поля заполнены")
    await sender.tap("Отправить", until="будут отправлены автоматически")

    # While billing is down, another inspector goes on entering readings.
    accepted_while_down = 0
    for position in range(1, 4):
        await walker.ask(
            (await slot_rows(app))[position].previous_value or "1",
            until=f"Прибор {position + 2} из",
        )
        accepted_while_down += 1
    assert all(row.status == SlotStatus.FILLED for row in (await slot_rows(app))[1:4])
    # The outbox's second failed try (0.2 s after the first) opens the circuit breaker;
    # the readings above may well have been quicker than that.
    async with asyncio.timeout(10):
        # The breaker is plain state with no event to wait on: a short poll.
        while not app.outbox.billing_down:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    # The one who sent opens the building again: from the saved draft, without billing.
    await sender.send_command("/menu")
    await sender.tap("Передача показаний по дому", until="Выберите дом")
    card = await sender.ask("авиастраителей", until="Нашлось")
    opened = await sender.tap(card.buttons[0][0], until="открыт сохранённый список приборов")
    async with app.session_pool() as session:
        period = (await session.scalars(select(Draft.period))).one()
    assert f"сохранённый список приборов за {period}." in opened.text
    # A second send while billing is down answers at once, honestly.
    await walker.tap("Отправить", until="Не все поля заполнены")
    await walker.tap("Отправить", until="будут отправлены автоматически")
    calls_while_down = billing.faults.hits["submit"] - outage

    billing.faults.error_rate = 0.0  # billing is back
    for phone in (sender, walker):
        told = await phone.wait_for("Результат отправки", timeout=20)
        assert "Принято:" in told.text
    async with app.session_pool() as session:
        pending = await submission.pending_count(session)
    effects = await billing_effects(billing.engine)
    report(
        f"billing down: {accepted_while_down} readings accepted while down, "
        f"{calls_while_down} submit calls during the outage (circuit breaker), "
        f"{pending} batches left pending after recovery, {effects.readings} readings in billing"
    )
    assert accepted_while_down == 3
    assert pending == 0
    assert effects.readings == 4 and effects.duplicates == 0
    assert calls_while_down <= 4, "the breaker stops hammering a billing that is down"


async def test_a_send_begun_while_billing_is_down_says_so_even_if_the_cooldown_ends_meanwhile(
    app: App, billing: BillingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = await open_building(app, user_id=2101)
    await type_value(phone, app, 0)
    billing.faults.error_rate, billing.faults.error_after_commit = 1.0, False  # billing is down
    clock = [0.0]
    app.outbox.breaker = CircuitBreaker(threshold=1, cooldown=60.0, clock=lambda: clock[0])
    app.outbox.breaker.record_failure()
    # The worker's probe has not gone out yet when the answer is written.
    monkeypatch.setattr(app.outbox.breaker, "allow", lambda: False)
    wait_for = app.outbox.wait_for

    async def cooldown_ends_during_the_wait(
        ids: list[int], seconds: float, *, chat_id: int
    ) -> dict[int, BatchResult]:
        results = await wait_for(ids, seconds, chat_id=chat_id)
        clock[0] += 61.0  # the breaker is half-open by the time the answer is written
        return results

    monkeypatch.setattr(app.outbox, "wait_for", cooldown_ends_during_the_wait)
    await phone.tap("Отправить", until="Не все поля заполнены")
    await phone.tap("Отправить")
    told = await phone.wait_for("сохранены")
    assert "Энергосбыт сейчас не отвечает" in told.text
    assert "будут отправлены автоматически" in told.text


async def test_50_parallel_presses_of_send_make_exactly_one_batch(
    app: App, billing: BillingServer
) -> None:
    phones = [await open_building(app, user_id=3001), await open_building(app, user_id=3002)]
    await type_value(phones[0], app, 0)
    cards = []
    for phone in phones:
        await phone.tap("Отправить", until="Не все поля заполнены")
        cards.append(phone.last_bot_message())
    billing.faults.push(Fault.delay(0.5), route="submit")  # a slow billing widens the race
    presses = [
        phone.press("Отправить", message=card)
        for _ in range(25)
        for phone, card in zip(phones, cards, strict=True)
    ]
    updates = await asyncio.gather(*presses)
    pressers = [phone for _ in range(25) for phone in phones]
    await asyncio.gather(
        *(
            phone.wait_for_answer_to(update, timeout=60)
            for phone, update in zip(pressers, updates, strict=True)
        )
    )
    async with app.session_pool() as session:
        made = (await session.execute(select(Submission))).scalars().all()
    batches = len(made)
    assert batches == 1
    pressed_first = next(phone for phone in phones if phone.chat_id == made[0].chat_id)
    await pressed_first.wait_for("Принято: 1", since=0, timeout=20)
    effects = await billing_effects(billing.engine)
    report(f"50 parallel presses of «Отправить»: {batches} batch, {effects.submissions} in billing")
    assert batches == 1
    assert effects.submissions == 1 and effects.duplicates == 0


async def test_50_concurrent_batch_writes_of_one_draft_make_exactly_one(tmp_path: Path) -> None:
    faults = Faults()
    async with serve_billing(tmp_path / "billing.db", faults) as server:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
        await upgrade_database(engine)
        pool = create_session_pool(engine)
        account_id, token = await link_demo_account(
            pool, server.backend, Vault.from_setting(SECRET_KEY)
        )
        slots = await open_slots(pool, server.backend, account_id, token, 10)
        draft_id = slots[0][0]
        async with pool() as session:
            await session.execute(
                update(DraftSlot)
                .where(DraftSlot.draft_id == draft_id, DraftSlot.position < 10)
                .values(status=SlotStatus.FILLED, value="1")
            )
            await session.commit()

        async def press(user_id: int) -> int | None:
            async with pool() as session:
                return await submission.create_batch(
                    session,
                    draft_id=draft_id,
                    user_id=user_id,
                    chat_id=user_id,
                    now=datetime.now(UTC),
                )

        made = [batch for batch in await asyncio.gather(*map(press, range(50))) if batch]
        async with pool() as session:
            claimed = await session.scalar(
                select(func.count(DraftSlot.id)).where(DraftSlot.submission_id.is_not(None))
            )
        await engine.dispose()
    report(f"50 concurrent batch writes of one draft: {len(made)} batch")
    assert len(made) == 1
    assert claimed == 10


# --- kill -9 of the real bot process during a submission ----------------------------


class Gate:
    """Holds billing's side of the next submission at one of the kill points."""

    def __init__(self, backend: EmbeddedBilling, bot_db: Path) -> None:
        self.point: str | None = None
        self.reached = asyncio.Event()
        self.go_on = asyncio.Event()
        self._bot_db = bot_db
        self._lock: aiosqlite.Connection | None = None
        self._submit = backend.submit_with_token
        backend.submit_with_token = self._submit_with_token  # type: ignore[method-assign,assignment]

    def arm(self, point: str) -> None:
        self.point = point
        self.reached.clear()
        self.go_on.clear()

    async def _submit_with_token(self, *args: Any) -> Any:
        point, self.point = self.point, None
        if point == "before":  # billing got the request and did nothing yet
            self.reached.set()
            await self.go_on.wait()
            raise BillingUnavailable("the bot is gone")
        result = await self._submit(*args)
        if point == "holding":  # committed, the answer is held back
            self.reached.set()
            await self.go_on.wait()
        elif point == "answered":
            # The bot gets the answer but cannot store it: its database is locked.
            self._lock = await aiosqlite.connect(self._bot_db, timeout=10, isolation_level=None)
            await self._lock.execute("BEGIN IMMEDIATE")
            self.reached.set()
        return result

    async def release(self) -> None:
        self.go_on.set()
        if self._lock is not None:
            await self._lock.execute("ROLLBACK")
            await self._lock.close()
            self._lock = None


async def bot_db_slots(bot_db: Path) -> list[tuple[str, str | None, str]]:
    """(status, previous value, meter id) of the draft's slots, in walking order."""
    async with aiosqlite.connect(bot_db, timeout=10) as db:
        cursor = await db.execute(
            "SELECT status, previous_value, meter_id FROM draft_slots ORDER BY position"
        )
        return [(row[0], row[1], row[2]) for row in await cursor.fetchall()]


@pytest.mark.duration(60)
@pytest.mark.timeout(1800 if SOAK else 300)
async def test_kill_9_during_a_submission_loses_and_duplicates_nothing(
    fake_telegram: FakeTelegram, start_bot: StartBot, bot_env: dict[str, str], tmp_path: Path
) -> None:
    points = ("before", "holding", "answered")
    # Per point: 30 runs in the soak; 3 by default, as every run starts a bot
    # (10 s on a quiet machine, 40 s on a loaded one).
    runs = 10 if SOAK else 1
    # The "answered" point holds the bot's SQLite write lock, so this test's bot runs
    # on SQLite in both passes (the outbox's PostgreSQL claims: tests/scale).
    bot_db = tmp_path / "kill-bot.db"
    async with serve_billing(tmp_path / "billing-server.db", Faults()) as server:
        gate = Gate(server.backend, bot_db)
        env = {
            "DATABASE_URL": f"sqlite+aiosqlite:///{bot_db}",
            "BILLING_URL": server.url,
            "BILLING_RETRIES": "0",
            "BILLING_TIMEOUT": "60",
            "OUTBOX_LEASE": "1",
            "OUTBOX_RETRY_BASE": "0.2",
            "SEND_WAIT": "1",
        }
        bot = await start_bot(env=env)
        phone = fake_telegram.user(user_id=4001, first_name="Иван", username="ivan4001")
        await phone.send_command("/start")
        await phone.wait_for("логин")
        await phone.ask("demo", until="пароль")
        await phone.ask("demo", until="Вы вошли")
        told = 0
        for run in range(runs * len(points)):
            point = points[run % len(points)]
            await phone.send_command("/menu")
            await phone.wait_for(lambda m: bool(m.buttons) and "Главное меню" in m.text)
            await phone.tap("Передача показаний по дому", until="Выберите дом")
            card = await phone.ask("авиастраителей", until="Нашлось")
            await phone.tap(card.buttons[0][0], until="Введите показание")
            slots = await bot_db_slots(bot_db)
            position = next(i for i, row in enumerate(slots) if row[0] == SlotStatus.EMPTY)
            await phone.ask(slots[position][1] or "1", until=f"Прибор {position + 2} из")
            await phone.tap("Отправить", until="Не все поля заполнены")
            gate.arm(point)
            mark = bot.mark()
            await phone.press("Отправить")
            await asyncio.wait_for(gate.reached.wait(), 30)
            if point == "answered":
                await bot.wait_for_log(re.compile(r"billing POST \S+/readings -> 200"), since=mark)
            bot.kill9()
            await bot.wait_exit()
            await gate.release()
            since = phone.mark()
            bot = await start_bot(env=env)
            # The restarted bot takes the batch up, sends it with its key, and tells:
            # by message, or on the card when it replays the unfinished press itself.
            await phone.wait_for(
                lambda m: "Результат отправки" in m.text or "Отправлено:" in m.text,
                since=since,
                timeout=30,
            )
            told += 1
            print(f"run {run + 1}: killed at {point!r}, batch sent once and the inspector told")
        await bot.stop()  # lets the last notification's bookkeeping finish
        effects = await billing_effects(server.engine)
        async with aiosqlite.connect(bot_db, timeout=10) as db:
            cursor = await db.execute(
                "SELECT count(*), sum(status = 'sent'), sum(notified_at IS NOT NULL) "
                "FROM submissions"
            )
            batches, sent, notified = await cursor.fetchone()  # type: ignore[misc]
        entered = runs * len(points)
    lost = entered - effects.readings
    report(
        f"kill -9 during a submission at {len(points)} points, {entered} runs: "
        f"{lost} lost, {effects.duplicates} duplicated, {told} inspectors told"
    )
    assert lost == 0 and effects.duplicates == 0
    assert effects.submissions == entered == batches == sent == notified
    assert told == entered
