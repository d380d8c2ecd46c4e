"""What an operator sees: /healthz, /readyz, /metrics, in-process and in the real bot."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiogram.exceptions import TelegramForbiddenError
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from billing_client.http import HttpBilling
from observability import add_health_routes
from services.metrics import Metrics
from storage.models import Account, Draft, Submission, SubmissionStatus
from tests.conftest import App
from tests.harness.fake_telegram import FakeTelegram
from tests.harness.process import StartBot


def samples(page: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The exposition parsed: (sample name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    }


def value(page: str, name: str, **labels: str) -> float:
    return samples(page).get((name, frozenset(labels.items())), 0.0)


async def client_for(app: App, billing: object | None = None) -> TestClient:  # type: ignore[type-arg]
    web_app = web.Application()
    add_health_routes(
        web_app,
        metrics=app.metrics,
        session_pool=app.session_pool,
        billing=billing or app.billing,  # type: ignore[arg-type]
        check_timeout=0.5,
    )
    client = TestClient(TestServer(web_app, host="127.0.0.1", port=0))
    await client.start_server()
    return client


@pytest.fixture
async def health(app: App) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    client = await client_for(app)
    yield client
    await client.close()


async def test_healthz_and_readyz_answer_when_database_and_billing_do(
    health: TestClient,  # type: ignore[type-arg]
) -> None:
    alive = await health.get("/healthz")
    assert alive.status == 200 and (await alive.json())["status"] == "ok"
    ready = await health.get("/readyz")
    assert ready.status == 200
    assert await ready.json() == {"status": "ready", "database": "ok", "billing": "ok"}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_readyz_is_503_with_the_reason_when_billing_is_unreachable(app: App) -> None:
    billing = HttpBilling(f"http://127.0.0.1:{closed_port()}/api/v1", total_timeout=1.0)
    client = await client_for(app, billing)
    try:
        answer = await client.get("/readyz")
        body = await answer.json()
    finally:
        await client.close()
        await billing.close()
    assert answer.status == 503
    assert body["status"] == "not ready" and body["database"] == "ok"
    assert body["billing"].startswith("unreachable")
    assert "127.0.0.1" not in body["billing"]  # no addresses in a public answer


class HangingBilling:
    async def ping(self) -> None:
        await asyncio.Event().wait()


async def test_readyz_gives_up_on_a_billing_that_does_not_answer(app: App) -> None:
    client = await client_for(app, HangingBilling())
    try:
        answer = await client.get("/readyz")
        body = await answer.json()
    finally:
        await client.close()
    assert answer.status == 503
    assert body["billing"] == "no answer within 0.5 s"


async def test_metrics_count_updates_billing_calls_and_bot_api_errors(
    app: App,
    health: TestClient,  # type: ignore[type-arg]
) -> None:
    phone = app.tg.user(user_id=1001, first_name="Иван")
    await phone.send_command("/start")
    await phone.wait_for("логин")
    await phone.ask("demo", until="пароль")
    await phone.send("demo")
    await phone.wait_for("Вы вошли")
    # A chat that blocked the bot: the failed call is counted before the error
    # reaches the caller.
    app.tg.user(user_id=1002, first_name="Олег")
    app.tg.faults.blocked_users.add(1002)
    with pytest.raises(TelegramForbiddenError):
        await app.bot.send_message(chat_id=1002, text="проверка")

    answer = await health.get("/metrics")
    assert answer.status == 200 and answer.content_type == "text/plain"
    text = await answer.text()
    # One chat's updates are handled one after another, each counted before the
    # next starts: /start and the login are done when the password's answer comes.
    assert value(text, "bot_updates_total", type="message", outcome="handled") >= 2
    assert value(text, "bot_handler_seconds_count", type="message") >= 2
    assert value(text, "bot_billing_calls_total", operation="login") == 1
    assert not [k for k, v in samples(text).items() if k[0] == "bot_billing_errors_total" and v]
    assert value(text, "bot_telegram_api_errors_total", method="sendMessage", kind="forbidden") == 1
    assert value(text, "bot_outbox_pending") == 0


async def test_metrics_show_the_outbox_depth_and_its_oldest_batch(
    app: App,
    health: TestClient,  # type: ignore[type-arg]
) -> None:
    now = datetime.now(UTC)
    async with app.session_pool() as session:
        session.add(Account(id="acc-1", name="УК", login="uk"))
        draft = Draft(
            account_id="acc-1",
            building_id="b-1",
            period="2026-11",
            address="ул. Ленина, 1",
            refreshed_at=now,
        )
        session.add(draft)
        await session.flush()
        for minutes, status in (
            (10, SubmissionStatus.PENDING),
            (3, SubmissionStatus.PENDING),
            (60, SubmissionStatus.SENT),
        ):
            session.add(
                Submission(
                    draft_id=draft.id,
                    idempotency_key=f"key-{minutes}",
                    payload="[]",
                    status=status,
                    created_by=1001,
                    chat_id=1001,
                    created_at=now - timedelta(minutes=minutes),
                )
            )
        await session.commit()

    text = await (await health.get("/metrics")).text()
    assert value(text, "bot_outbox_pending") == 2
    assert 600 <= value(text, "bot_outbox_oldest_pending_age_seconds") < 900


def test_two_metrics_objects_do_not_share_a_registry() -> None:
    first, second = Metrics(), Metrics()
    first.observe_update("message", "handled", 0.01)
    assert value(first.render().decode(), "bot_updates_total", type="message", outcome="handled")
    assert not value(
        second.render().decode(), "bot_updates_total", type="message", outcome="handled"
    )


@pytest.mark.duration(15)
async def test_the_real_bot_serves_health_and_metrics_on_metrics_port(
    start_bot: StartBot, fake_telegram: FakeTelegram
) -> None:
    port = closed_port()
    bot = await start_bot(env={"METRICS_PORT": str(port), "METRICS_HOST": "127.0.0.1"})
    await bot.wait_for_log("Health and metrics on http://127.0.0.1", timeout=10)
    phone = fake_telegram.user(user_id=2010, first_name="Пётр")
    await phone.send_command("/start")
    await phone.wait_for("логин", timeout=15)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        base = f"http://127.0.0.1:{port}"
        async with http.get(f"{base}/healthz") as alive:
            assert alive.status == 200
        async with http.get(f"{base}/readyz") as ready:
            assert ready.status == 200, await ready.text()
        async with http.get(f"{base}/metrics") as metrics:
            text = await metrics.text()
    assert value(text, "bot_updates_total", type="message", outcome="handled") >= 1
    assert value(text, "process_resident_memory_bytes") > 0
    result = await bot.stop()
    assert result.returncode == 0
