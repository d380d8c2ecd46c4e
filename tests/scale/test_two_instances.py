"""Two webhook instances of the bot behind one load balancer, on one PostgreSQL and one
Redis: several inspectors' updates are split between them, and every update is posted
twice (the second time to the other instance). Not one reading is lost or doubled, and
billing gets exactly one submission per batch.

Each instance is a real `bot.main()` process (forked from tests/reliability/forkserver.py,
so the second costs no imports), started as `MODE=webhook` with the same settings but
its own port.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing_client.embedded.models import BuildingRow, ReadingRow, SubmissionRow
from storage.engine import create_engine, create_session_pool
from storage.models import Draft, DraftSlot, SlotStatus, Submission, SubmissionStatus
from tests.flows.walking import plausible
from tests.harness.databases import Databases, on_postgresql
from tests.harness.fake_telegram import FakeTelegram
from tests.harness.phone import Phone
from tests.reliability.forked import ForkedBot, ForkServer
from webhook import SECRET_HEADER

pytestmark = [
    pytest.mark.skipif(
        not (on_postgresql() and os.environ.get("TEST_REDIS_URL")),
        reason="several instances need a shared PostgreSQL and Redis: set TEST_DATABASE_URL "
        "and TEST_REDIS_URL (python3 tasks.py services; CI's second pass sets them)",
    ),
    pytest.mark.timeout(300),
]

WAIT = 30.0  # two real processes on a loaded machine
SECRET = "two-Instances_0123456789"
READINGS = 6  # per inspector
# (search query, street of the building it finds): one building per inspector.
BUILDINGS = [
    ("авиастроителей", "Авиастроителей ул."),
    ("красный", "Красный пр-т"),
    ("гоголя", "Гоголя ул."),
    ("кирова", "Кирова ул."),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Balancer:
    """What a load balancer does for the bot's public webhook URL: each POST goes to the
    next instance. The n-th POST goes to instance (n + n // 2) % 2, so first deliveries
    alternate between the two and each redelivery goes to the other instance."""

    def __init__(self, upstreams: list[str]) -> None:
        self.upstreams = upstreams
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/telegram"
        self.posts: list[tuple[int, int, int]] = []  # (update_id, instance, status)
        self._counter = itertools.count()
        self._http: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Balancer:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        app = web.Application()
        app.router.add_post("/telegram", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None and self._http is not None
        await self._runner.cleanup()
        await self._http.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._http is not None
        n = next(self._counter)
        instance = (n + n // 2) % 2
        body = await request.read()
        headers = {SECRET_HEADER: request.headers.get(SECRET_HEADER, "")}
        headers["Content-Type"] = request.headers.get("Content-Type", "application/json")
        update_id = int((await request.json())["update_id"])
        try:
            async with self._http.post(
                self.upstreams[instance], data=body, headers=headers
            ) as answer:
                status, reply = answer.status, await answer.read()
                content_type = answer.headers.get("Content-Type")
        except aiohttp.ClientError:
            status, reply, content_type = 502, b"", None
        self.posts.append((update_id, instance, status))
        response = web.Response(status=status, body=reply)
        if content_type:
            response.headers["Content-Type"] = content_type
        return response


@pytest.fixture
async def fork_server(databases: Databases) -> AsyncIterator[ForkServer]:
    """Stopped before the test's databases are dropped (it depends on them)."""
    del databases
    server = await ForkServer.open()
    try:
        yield server
    finally:
        await server.close()


async def start_instances(
    server: ForkServer, tg: FakeTelegram, env: dict[str, str], tmp_path: Path, ports: list[int]
) -> list[ForkedBot]:
    """Start the instances one after the other, each up once it has set the webhook."""
    bots = []
    for number, port in enumerate(ports, start=1):
        since = tg.now()
        instance_env = {
            **env,
            "WEBHOOK_PORT": str(port),
            "DATA_DIR": str(tmp_path / f"data-{number}"),
        }
        bot = await server.spawn(instance_env, tmp_path / f"bot-{number}.log", f"bot #{number}")
        tg.watch(bot)
        await tg.wait_for_call("setWebhook", since=since, timeout=120)
        bots.append(bot)
    return bots


async def log_in(phone: Phone) -> None:
    await phone.send_command("/start")
    await phone.wait_for("логин", timeout=WAIT)
    await phone.ask("demo", until="пароль", timeout=WAIT)
    await phone.ask("demo", until="Вы вошли", timeout=WAIT)


async def open_building(phone: Phone, query: str) -> None:
    await phone.tap("Передача показаний по дому", until="Выберите дом", timeout=WAIT)
    found = await phone.ask(query, until="Нашлось", timeout=WAIT)
    await phone.tap(found.buttons[0][0], until="Введите показание", timeout=WAIT)


async def draft_of(pool: async_sessionmaker[AsyncSession], street: str) -> list[DraftSlot]:
    async with pool() as session:
        rows = await session.execute(
            select(DraftSlot)
            .join(Draft, Draft.id == DraftSlot.draft_id)
            .where(Draft.street == street)
            .order_by(DraftSlot.position)
        )
        return list(rows.scalars())


async def enter_and_send(
    phone: Phone, pool: async_sessionmaker[AsyncSession], street: str
) -> dict[int, str]:
    slots = await draft_of(pool, street)
    typed = {slot.position: plausible(slot) for slot in slots[:READINGS]}
    for number, slot in enumerate(slots[:READINGS], start=2):
        await phone.ask(typed[slot.position], until=f"Прибор {number} из", timeout=WAIT)
    await phone.tap("Отправить", until="Не все поля заполнены", timeout=WAIT)
    await phone.tap(
        "Отправить", until=f"Отправлено: {READINGS}. Принято: {READINGS}.", timeout=WAIT
    )
    return typed


@pytest.mark.duration(20)
async def test_two_webhook_instances_lose_and_double_nothing(
    fork_server: ForkServer,
    fake_telegram: FakeTelegram,
    bot_env: dict[str, str],
    tmp_path: Path,
) -> None:
    tg = fake_telegram
    tg.duplicate_updates = True  # every update is posted twice
    ports = [free_port(), free_port()]
    upstreams = [f"http://127.0.0.1:{port}/telegram" for port in ports]
    async with Balancer(upstreams) as balancer:
        env = {
            **bot_env,
            "MODE": "webhook",
            "WEBHOOK_URL": balancer.url,  # both instances are behind the one public URL
            "WEBHOOK_SECRET": SECRET,
            "WEBHOOK_HOST": "127.0.0.1",
            "SECRET_KEY": "two-instances-secret-key-0123456789",
            "LOG_LEVEL": "INFO",
        }
        bots = await start_instances(fork_server, tg, env, tmp_path, ports)
        engine = create_engine(bot_env["DATABASE_URL"])
        billing_engine = create_engine(bot_env["BILLING_DATABASE_URL"])
        try:
            pool = create_session_pool(engine)
            phones = [
                tg.user(user_id=7001 + n, first_name=f"Инспектор {n + 1}")
                for n in range(len(BUILDINGS))
            ]
            # One after the other: the bot counts a company login's attempts still in
            # flight against its throttle (services.accounts), so four at once would trip it.
            for phone in phones:
                await log_in(phone)
            await asyncio.gather(
                *(
                    open_building(phone, query)
                    for phone, (query, _) in zip(phones, BUILDINGS, strict=True)
                )
            )
            typed = await asyncio.gather(
                *(
                    enter_and_send(phone, pool, street)
                    for phone, (_, street) in zip(phones, BUILDINGS, strict=True)
                )
            )
            await tg.wait_all_confirmed(timeout=WAIT)
            await tg.wait_quiet(0.5, timeout=WAIT)

            # The work really was split, and every update reached both instances.
            first_to: dict[int, int] = {}
            for update_id, instance, status in balancer.posts:
                assert status == 200
                first_to.setdefault(update_id, instance)
            assert set(Counter(first_to.values())) == {0, 1}, "one instance got everything"
            delivered = Counter(update_id for update_id, _, _ in balancer.posts)
            assert set(delivered.values()) == {2}
            assert all(
                {i for u, i, _ in balancer.posts if u == update_id} == {0, 1}
                for update_id in first_to
            ), "a redelivery went to the same instance"

            # The bot's drafts: exactly the values typed, each in its slot, all accepted.
            for (_, street), values in zip(BUILDINGS, typed, strict=True):
                slots = await draft_of(pool, street)
                filled = {s.position: s.value for s in slots if s.value is not None}
                assert filled == values, f"{street}: readings lost or doubled"
                assert all(s.status == SlotStatus.ACCEPTED for s in slots if s.position in values)
            async with pool() as session:
                batches = list((await session.scalars(select(Submission))).all())
            assert len(batches) == len(BUILDINGS)
            assert {b.status for b in batches} == {SubmissionStatus.SENT}

            # Billing's own rows: one submission per building, holding every reading once.
            async with create_session_pool(billing_engine)() as billing:
                per_street = dict(
                    (
                        await billing.execute(
                            select(BuildingRow.street, func.count(SubmissionRow.id))
                            .join(SubmissionRow, SubmissionRow.building_id == BuildingRow.id)
                            .group_by(BuildingRow.street)
                        )
                    ).all()
                )
                readings = await billing.scalar(select(func.count(ReadingRow.id)))
            assert per_street == {street: 1 for _, street in BUILDINGS}
            assert readings == READINGS * len(BUILDINGS)

            # Each inspector saw the result once, and nothing went wrong on either side.
            for phone in phones:
                results = [m for m in phone.bot_messages() if "Отправлено:" in m.text]
                assert len(results) == 1
            assert not tg.errors()
            assert all(bot.running for bot in bots)
        finally:
            await engine.dispose()
            await billing_engine.dispose()
