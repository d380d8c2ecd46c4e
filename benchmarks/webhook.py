"""Webhook mode: 1 instance vs 2 instances of bot.py (MODE=webhook) on PostgreSQL + Redis.

    python3 tasks.py bench --webhook-only      # this part alone, about a minute
    python3 tasks.py bench --webhook           # the full run and this part

A throwaway PostgreSQL and redis-server (tasks.py's services_for_tests, the same the
second test pass uses) hold the bot's and the billing's databases and the FSM state.
The fake Bot API server posts updates in parallel (up to setWebhook's max_connections,
40 as Telegram; one user's updates one at a time, in order) to a round-robin balancer
here, which forwards each request to the next instance, as deploy/nginx.conf does. Every
instance sets the balancer's URL as its webhook, as behind a real load balancer.

The simulated inspectors are those of the polling run (load.py), in a closed loop; the
figure is the answered updates per second. Both runs use the same database, account and
number of inspectors; the 2-instance run walks other buildings with other inspectors.
The machine has 2 cores shared by everything here (PostgreSQL, Redis, the fake server,
the inspectors, the bot processes): the ratio cannot reach 2 and says how much a second
instance helps on this machine, not on two machines.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from benchmarks.load import BuildingPool, Driver, Inspector, card_answer, walk_into_building
from benchmarks.seed import FIRST_USER_ID, seed
from tests.harness import FakeTelegram

SECRET = "bench-webhook-Secret_0123456789"
INSTANCES = (1, 2)
FORWARDED = ("Content-Type", "X-Telegram-Bot-Api-Secret-Token")


@contextlib.asynccontextmanager
async def round_robin(ports: list[int]) -> AsyncIterator[str]:
    """A load balancer on 127.0.0.1: each POST goes to the next instance; yields its URL.

    The instance's answer (status and body) goes back to the fake unchanged, so an
    update is acknowledged only once an instance has stored it.
    """
    targets = itertools.cycle([f"http://127.0.0.1:{port}/telegram" for port in ports])
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:

        async def forward(request: web.Request) -> web.Response:
            headers = {k: request.headers[k] for k in FORWARDED if k in request.headers}
            try:
                async with http.post(
                    next(targets), data=await request.read(), headers=headers
                ) as answer:
                    return web.Response(
                        status=answer.status,
                        body=await answer.read(),
                        content_type=answer.content_type,
                    )
            except aiohttp.ClientError:
                return web.Response(status=502, text="bad gateway")

        app = web.Application()
        app.router.add_post("/telegram", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield f"http://127.0.0.1:{port}/telegram"
        finally:
            await runner.cleanup()


@contextlib.contextmanager
def services() -> Iterator[None]:
    """PostgreSQL and Redis for the run: the test suite's (TEST_DATABASE_URL and
    TEST_REDIS_URL set, e.g. the smoke test in the second pass), else tasks.py's own."""
    if os.environ.get("TEST_DATABASE_URL") and os.environ.get("TEST_REDIS_URL"):
        yield
        return
    from tasks import services_for_tests

    with services_for_tests() as env:
        os.environ.update(env)  # tests.harness.databases reads them
        try:
            yield
        finally:
            for name in env:
                os.environ.pop(name, None)


@contextlib.asynccontextmanager
async def databases() -> AsyncIterator[tuple[str, str, str]]:
    """Fresh bot and billing databases and an emptied Redis database; dropped after."""
    from tests.harness.databases import create_database, drop_database, fresh_redis_url

    stem = f"bench_{uuid.uuid4().hex[:8]}"
    names = [f"{stem}_bot", f"{stem}_billing"]
    urls = [await create_database(name) for name in names]
    redis = await fresh_redis_url()
    assert redis is not None
    try:
        yield urls[0], urls[1], redis
    finally:
        for name in names:
            await drop_database(name)


async def bench_webhook(tg: FakeTelegram, config: Any, work: Path, results: dict[str, Any]) -> None:
    async with databases() as (bot_url, billing_url, redis_url):
        await _bench_webhook(tg, config, work, results, (bot_url, billing_url), redis_url)


async def _bench_webhook(
    tg: FakeTelegram,
    config: Any,
    work: Path,
    results: dict[str, Any],
    database_urls: tuple[str, str],
    redis_url: str,
) -> None:
    from benchmarks.run import Monitor, free_ports, running_all, saturate, small_plan

    plan = small_plan(config)
    users = config.webhook_users
    seeded = await seed(
        work / "webhook", plan, inspectors=users * len(INSTANCES), database_urls=database_urls
    )
    print(f"bench: webhook, PostgreSQL + Redis: {seeded.slots} slots", flush=True)
    tg.webhook_connections = None  # what setWebhook asked for: 40, as Telegram
    pool = BuildingPool(plan)
    rng = random.Random(5)
    first_user = FIRST_USER_ID
    for count in INSTANCES:
        ports = free_ports(count)
        async with round_robin(ports) as url:
            envs = [
                {
                    **seeded.env,
                    "MODE": "webhook",
                    "REDIS_URL": redis_url,
                    "WEBHOOK_URL": url,
                    "WEBHOOK_SECRET": SECRET,
                    "WEBHOOK_HOST": "127.0.0.1",
                    "WEBHOOK_PORT": str(port),
                }
                for port in ports
            ]
            names = [f"bot-webhook-{count}-{n + 1}" for n in range(count)]
            async with running_all(tg, "bot.py", envs, work, names, ready="setWebhook") as bots:
                monitor = Monitor(*(bot.pid for bot in bots))
                driver = Driver(tg, card_answer)
                inspectors = [
                    Inspector(driver, tg.user(uid, f"Контролёр {uid}", started=True), pool, rng)
                    for uid in range(first_user, first_user + users)
                ]
                first_user += users
                # Every instance logs the account in to billing once (argon2): not measured.
                await walk_into_building(inspectors)
                result = await saturate(
                    list(inspectors), driver.recorder, monitor, config, window=config.webhook_window
                )
                print(f"bench: webhook, {count} instance(s): {result}", flush=True)
                results[f"webhook_updates_per_s_{count}_instance{'s' * (count > 1)}"] = (
                    result.updates_per_s
                )
                results[f"webhook_cpu_ms_per_update_{count}_instances"] = result.cpu_ms_per_update
                results[f"webhook_p50_ms_{count}_instances"] = result.p50_ms
                results[f"webhook_api_errors_{count}_instances"] = sum(
                    driver.recorder.errors.values()
                )
                failed = [d for d in tg.webhook_deliveries if d.status != 200]
                results[f"webhook_failed_deliveries_{count}_instances"] = len(failed)
                tg.webhook_deliveries.clear()
                driver.close()
    results["webhook_inspectors"] = users
    results["webhook_2_vs_1_instances_ratio"] = round(
        results["webhook_updates_per_s_2_instances"]
        / max(results["webhook_updates_per_s_1_instance"], 0.1),
        2,
    )
