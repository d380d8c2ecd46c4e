"""Fault injection: updates, Telegram's limits, secrets, malformed input (issue 6, part 1).

Each test asserts a counted figure and prints it (`pytest tests/reliability -q -s` shows
them). `--soak N` (or SOAK=N) multiplies the run counts. The real-process tests run
`python bot.py` against the fake Bot API server and kill it for real.
"""

# Every wait takes its own timeout: a test states its time budget where it waits.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from pydantic import SecretStr
from sqlalchemy import select

from billing_client import open_billing
from billing_client.embedded.backend import EmbeddedBilling
from settings import BillingSettings
from storage.engine import create_engine, create_session_pool
from storage.models import DraftSlot, InboxUpdate, SlotStatus
from tests.conftest import App
from tests.harness.databases import fsm_contents, on_postgresql, stored_bytes
from tests.harness.fake_telegram import FakeTelegram
from tests.harness.phone import Phone
from tests.reliability.forked import ForkedBot, ForkServer

# A real bot process needs a few seconds to import aiogram on a loaded machine.
SLOW = 30.0
READINGS = 80


SpawnBot = Callable[..., Awaitable[ForkedBot]]


@pytest.fixture
async def spawn_bot(
    fake_telegram: FakeTelegram, bot_env: dict[str, str], tmp_path: Path
) -> AsyncIterator[SpawnBot]:
    """`bot = await spawn_bot()`: `bot.main()` in a fresh process forked from a server
    that imported the bot once, so a restart costs milliseconds of imports, not seconds.
    Waits for its first getUpdates; everything is stopped after the test."""
    server = await ForkServer.open()
    count = 0

    async def spawn(timeout: float = 120.0) -> ForkedBot:
        nonlocal count
        count += 1
        since = fake_telegram.now()
        bot = await server.spawn(bot_env, tmp_path / f"bot-{count}.log", f"bot #{count}")
        fake_telegram.watch(bot)
        await fake_telegram.wait_for_call("getUpdates", since=since, timeout=timeout)
        return bot

    try:
        yield spawn
    finally:
        await server.close()


def figure(name: str, value: object) -> None:
    print(f"\nFIGURE {name}: {value}")


def value_for(slot: DraftSlot) -> str:
    """A plausible reading for the slot, different from its neighbours'."""
    previous = Decimal(slot.previous_value) if slot.previous_value else Decimal(0)
    value = previous + 1 + slot.position % 7
    if len(str(int(value))) > slot.digits:
        value = previous
    if slot.fraction_digits:
        return f"{value:.{slot.fraction_digits}f}"
    return str(int(value))


async def stored_slots(database_url: str) -> list[DraftSlot]:
    engine = create_engine(database_url)
    try:
        async with create_session_pool(engine)() as session:
            rows = await session.execute(select(DraftSlot).order_by(DraftSlot.position))
            return list(rows.scalars())
    finally:
        await engine.dispose()


async def log_in(phone: Phone, *, timeout: float = 10.0) -> None:
    await phone.send_command("/start")
    await phone.wait_for("логин", timeout=timeout)
    await phone.ask("demo", until="пароль", timeout=timeout)
    await phone.ask("demo", until="Вы вошли", timeout=timeout)


async def open_building(phone: Phone, *, timeout: float = 10.0) -> None:
    await phone.tap("Передача показаний по дому", until="Выберите дом", timeout=timeout)
    found = await phone.ask("авиастраителей", until="Нашлось", timeout=timeout)
    await phone.tap(found.buttons[0][0], until="Введите показание", timeout=timeout)


def count_wrong(slots: list[DraftSlot], typed: dict[int, str]) -> int:
    """Slots whose value is not exactly what was typed for them (or filled untyped)."""
    wrong = 0
    for slot in slots:
        expected = typed.get(slot.position)
        if expected is None:
            wrong += slot.status != SlotStatus.EMPTY
        elif slot.value is None or Decimal(slot.value) != Decimal(expected):
            wrong += 1
    return wrong


# --- kill -9 and SIGTERM ------------------------------------------------------------------


@pytest.mark.duration(45)
@pytest.mark.timeout(900)
async def test_kill9_at_random_points_while_entering_readings(
    fake_telegram: FakeTelegram, spawn_bot: SpawnBot, bot_env: dict[str, str], soak: int
) -> None:
    tg = fake_telegram
    runs = 20 * soak
    rng = random.Random(6001)
    bot = await spawn_bot()
    phone = tg.user(user_id=6001, first_name="Инна", username="inna")
    await log_in(phone, timeout=SLOW)
    await open_building(phone, timeout=SLOW)
    slots = await stored_slots(bot_env["DATABASE_URL"])
    assert len(slots) > READINGS
    typed = {slot.position: value_for(slot) for slot in slots[:READINGS]}
    kill_after = set(rng.sample(range(READINGS), runs)) if runs <= READINGS else set()
    kills_per_reading = max(1, runs // READINGS)

    acknowledged: set[int] = set()
    kills = 0
    for position in range(READINGS):
        next_card = f"Прибор {position + 2} из"
        await phone.send(typed[position])
        if position in kill_after or runs > READINGS:
            for _ in range(kills_per_reading):
                # The kill point: anywhere from "not fetched yet" to "card being sent".
                await asyncio.sleep(rng.uniform(0.0, 0.25))
                screen = phone.screen()
                if any(m.from_bot and next_card in m.text for m in screen.messages):
                    acknowledged.add(position)
                bot.kill9()
                await bot.wait_exit()
                kills += 1
                bot = await spawn_bot()
        await phone.wait_for(next_card, timeout=SLOW)  # the flow resumes where it stopped
        acknowledged.add(position)

    slots = await stored_slots(bot_env["DATABASE_URL"])
    by_position = {slot.position: slot for slot in slots}
    lost = sum(
        1
        for p in acknowledged
        if by_position[p].value is None or Decimal(by_position[p].value or 0) != Decimal(typed[p])
    )
    duplicates = count_wrong(slots, typed)
    figure("kill -9 runs", kills)
    figure("kill -9 acknowledged readings lost", lost)
    figure("kill -9 duplicate or misplaced readings", duplicates)
    assert kills >= runs
    assert lost == 0
    assert duplicates == 0
    assert len(acknowledged) == READINGS


@pytest.mark.duration(45)
@pytest.mark.timeout(900)
async def test_sigterm_in_the_middle_of_a_handler(
    fake_telegram: FakeTelegram, spawn_bot: SpawnBot, bot_env: dict[str, str], soak: int
) -> None:
    tg = fake_telegram
    runs = 20 * soak
    bot = await spawn_bot()
    phone = tg.user(user_id=6002, first_name="Олег", username="oleg")
    await log_in(phone, timeout=SLOW)
    await open_building(phone, timeout=SLOW)
    slots = await stored_slots(bot_env["DATABASE_URL"])
    typed: dict[int, str] = {}
    # Every handler of a value now spends 0.3 s inside a Bot API call.
    tg.faults.method("editMessageText").delay = 0.3
    stop_seconds: list[float] = []
    position = 0
    for _run in range(runs):
        mark = tg.now()
        typed[position] = value_for(slots[position])
        await phone.send(typed[position])
        await tg.wait_for_call("editMessageText", since=mark, timeout=SLOW)
        stopping = asyncio.create_task(bot.stop())
        # A second value typed while the bot shuts down: it must not be lost either.
        typed[position + 1] = value_for(slots[position + 1])
        await phone.send(typed[position + 1])
        result = await stopping
        stop_seconds.append(result.seconds)
        assert not result.killed and result.returncode == 0
        bot = await spawn_bot()
        position += 2
        await phone.wait_for(f"Прибор {position + 1} из", timeout=SLOW)

    stored = await stored_slots(bot_env["DATABASE_URL"])
    lost = sum(1 for s in stored if s.position in typed and s.status != SlotStatus.FILLED)
    figure("SIGTERM runs", runs)
    figure("SIGTERM updates lost", lost)
    figure("SIGTERM slowest shutdown, s", round(max(stop_seconds), 2))
    assert lost == 0
    assert count_wrong(stored, typed) == 0
    assert max(stop_seconds) < 10


# --- duplicates and Telegram faults (in-process) ------------------------------------------


async def _walk_values(app: App, phone: Phone, count: int) -> dict[int, str]:
    async with app.session_pool() as session:
        slots = list(
            (await session.execute(select(DraftSlot).order_by(DraftSlot.position))).scalars()
        )
    typed: dict[int, str] = {}
    for slot in slots[:count]:
        typed[slot.position] = value_for(slot)
        await phone.ask(typed[slot.position], until=f"Прибор {slot.position + 2} из")
    return typed


async def _slots(app: App) -> list[DraftSlot]:
    async with app.session_pool() as session:
        rows = await session.execute(select(DraftSlot).order_by(DraftSlot.position))
        return list(rows.scalars())


@pytest.mark.duration(10)
@pytest.mark.timeout(300)
async def test_every_update_delivered_twice(app: App, soak: int) -> None:
    tg = app.tg
    tg.duplicate_updates = True
    total = 200 * soak
    phone = tg.user(user_id=6003, first_name="Вера", username="vera")
    await log_in(phone)
    await open_building(phone)  # 6 updates so far
    values = min(120, total - 6)
    mark = tg.now()
    typed = await _walk_values(app, phone, values)
    helps = total - 6 - values
    for _ in range(helps):
        await phone.ask("/help", until="/menu")
    # Confirmed means the bot polled past them, which it does only after storing them.
    await tg.wait_all_confirmed(timeout=10)
    await tg.wait_quiet(0.3)

    sent = tg.count_calls("sendMessage", since=mark, ok=True)
    duplicate_replies = sent - (values + helps)  # one new message per value and per /help
    duplicate_readings = count_wrong(await _slots(app), typed)
    figure("updates delivered twice", app.runner.duplicates)
    figure("duplicate readings", duplicate_readings)
    figure("duplicate replies", duplicate_replies)
    assert app.runner.duplicates == total
    assert duplicate_readings == 0
    assert duplicate_replies == 0


@pytest.mark.duration(25)
@pytest.mark.timeout(300)
async def test_telegram_answering_429_and_502(app: App, soak: int) -> None:
    tg = app.tg
    tg.faults.rng.seed(6004)
    tg.faults.all.p_429 = 0.3
    tg.faults.all.p_5xx = 0.1
    values = 20 * soak
    phone = tg.user(user_id=6004, first_name="Глеб", username="gleb")
    mark = tg.now()
    await log_in(phone, timeout=30)
    await open_building(phone, timeout=30)
    typed: dict[int, str] = {}
    for slot in (await _slots(app))[:values]:
        typed[slot.position] = value_for(slot)
        await phone.ask(typed[slot.position], until=f"Прибор {slot.position + 2} из", timeout=30)

    # Login 3 + search 1 + card 1, then one new card per value: all reached the phone.
    expected = 5 + values
    delivered = tg.count_calls("sendMessage", since=mark, ok=True)
    throttled = sum(1 for t in tg.throttles if t.at >= mark)
    failed_5xx = sum(1 for c in tg.errors(since=mark) if (c.status or 0) >= 500)
    early = tg.early_retries()
    figure("429 answered", throttled)
    figure("502 answered", failed_5xx)
    figure("messages delivered, %", round(100 * delivered / expected, 1))
    figure("retries before retry_after", len(early))
    assert throttled > 0 and failed_5xx > 0, "the faults were injected"
    assert delivered == expected
    assert count_wrong(await _slots(app), typed) == 0
    assert early == []


async def test_a_user_who_blocked_the_bot_does_not_stop_others(app: App) -> None:
    tg = app.tg
    blocker = tg.user(user_id=6005, first_name="Ушёл")
    other = tg.user(user_id=6006, first_name="Остался")
    await blocker.send_command("/start")
    await blocker.wait_for("логин")
    await blocker.send("demo")
    # Blocked before the bot answers (no await in between): its reply gets 403.
    tg.faults.blocked_users.add(6005)
    await tg.wait_for_call(
        "sendMessage", where=lambda c: c.chat_id == 6005 and c.status == 403, timeout=10
    )
    await log_in(other)
    # One refused call, no retry and no "something went wrong" sent after it.
    assert tg.count_calls("sendMessage", chat_id=6005, ok=False) == 1


# --- secrets -------------------------------------------------------------------------------

CANARY_PASSWORD = "Canary-Pw-7f3a9c1e5b"
CANARY_TOKEN = "424242:TEST-FAKE-CANARY-TOKEN-never-real-42"


@pytest.fixture
def bot_token() -> str:
    # Overrides the harness's token for this module: the token itself is a canary.
    return CANARY_TOKEN


async def _create_canary_accounts(bot_env: dict[str, str], count: int) -> None:
    # One login per inspector: a kill during the billing check counts as a failed try
    # (on purpose, see services.accounts), and five on one login would throttle it.
    settings = BillingSettings(
        _env_file=None,
        DATA_DIR=Path(bot_env["DATA_DIR"]),
        BILLING_DATABASE_URL=bot_env["BILLING_DATABASE_URL"],
        BILLING_URL=None,
    )
    billing = await open_billing(settings)
    assert isinstance(billing, EmbeddedBilling)
    # One hash with production costs for all: the bot checks each login against it at
    # production cost, and the 49 other hashes would cost ~0.2-0.5 s each in the test.
    password_hash = PasswordHasher().hash(CANARY_PASSWORD)
    try:
        for n in range(count):
            await billing.add_account(
                f"canary-{n}",
                "ООО «Канарейка»",
                SecretStr(CANARY_PASSWORD),
                password_hash=password_hash,
            )
    finally:
        await billing.close()


def _count_in_files(folders: list[Path], needles: list[bytes]) -> tuple[list[str], int]:
    """Every file under the folders (databases, WAL, logs), and how often the needles occur."""
    files = [f for folder in folders for f in folder.rglob("*") if f.is_file()]
    hits = sum(f.read_bytes().count(needle) for f in files for needle in needles)
    return [f.name for f in files], hits


@pytest.mark.duration(75)
@pytest.mark.timeout(600)
async def test_canary_password_and_token_are_nowhere(
    fake_telegram: FakeTelegram,
    spawn_bot: SpawnBot,
    bot_env: dict[str, str],
    tmp_path: Path,
    soak: int,
) -> None:
    tg = fake_telegram
    logins, killed = 50 * soak, 5 * soak
    rng = random.Random(6006)
    await _create_canary_accounts(bot_env, logins)
    started: list[ForkedBot] = [await spawn_bot()]
    kill_at = set(rng.sample(range(logins), killed))
    asked_again = 0
    for n in range(logins):
        phone = tg.user(user_id=7000 + n, first_name=f"Инспектор {n}")
        await phone.send_command("/start")
        await phone.wait_for("логин", timeout=SLOW)
        await phone.ask(f"canary-{n}", until="пароль", timeout=SLOW)
        await phone.send(CANARY_PASSWORD)
        if n in kill_at:
            await asyncio.sleep(rng.uniform(0.0, 0.2))  # the kill point
            started[-1].kill9()
            await started[-1].wait_exit()
            started.append(await spawn_bot())
        reply = await phone.wait_for(re.compile("Вы вошли|Бот перезапускался"), timeout=SLOW)
        if "Вы вошли" not in reply.text:
            asked_again += 1
            assert reply.text.startswith("Бот перезапускался") and "пароль" in reply.text
            await phone.send(CANARY_PASSWORD)
            await phone.wait_for("Вы вошли", timeout=SLOW)
        await phone.wait_screen(lambda s: all(CANARY_PASSWORD not in m.text for m in s.messages))
    # Killed, not stopped: a clean close checkpoints and removes the WAL, a crash leaves
    # it on disk, and it is searched too.
    for process in started:
        if process.running:
            process.kill9()
            await process.wait_exit()

    needles = [CANARY_PASSWORD.encode(), CANARY_TOKEN.encode()]
    log_hits = sum(p.log.encode().count(needle) for p in started for needle in needles)
    data_files, file_hits = _count_in_files([Path(bot_env["DATA_DIR"]), tmp_path], needles)
    if on_postgresql():
        # No database files here: every row of every table, as a dump would hold them.
        rows = await stored_bytes(bot_env["DATABASE_URL"])
        file_hits += sum(blob.count(needle) for blob in rows.values() for needle in needles)
    else:
        assert any(name.endswith("bot.db-wal") for name in data_files), "the WAL was searched"
    engine = create_engine(bot_env["DATABASE_URL"])
    async with create_session_pool(engine)() as session:
        redacted = (
            await session.execute(select(InboxUpdate).where(InboxUpdate.redacted.is_(True)))
        ).all()
    await engine.dispose()
    # The FSM storage in use: the bot's database, or Redis in the PostgreSQL + Redis pass.
    fsm = await fsm_contents(bot_env["DATABASE_URL"], bot_env.get("REDIS_URL"))
    fsm_hits = sum(value.count(CANARY_PASSWORD) for value in fsm.values())
    still_shown = sum(
        1
        for chat in tg.chats.values()
        for m in chat.messages.values()
        if not m.deleted and CANARY_PASSWORD in str(m.data)
    )
    figure("logins", logins)
    figure("killed mid-login", len(started) - 1)
    figure("asked for the password again after a kill", asked_again)
    figure("canary bytes in logs", log_hits)
    figure("canary bytes in database files (WAL included) and log files", file_hits)
    figure("canary in FSM data", fsm_hits)
    assert len(redacted) >= logins, "password messages were stored redacted"
    assert log_hits == 0
    assert file_hits == 0
    assert fsm_hits == 0
    assert still_shown == 0
