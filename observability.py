"""HTTP endpoints for operators: /healthz, /readyz and /metrics (Prometheus).

`add_health_routes` mounts them on any aiohttp application (the webhook server's);
in polling mode `start_metrics_server` serves them alone on METRICS_HOST:METRICS_PORT.
No aiogram here: the same routes serve both modes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing_client.base import Billing
from services.metrics import CHECK_TIMEOUT, Metrics, check_readiness

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)


def add_health_routes(
    app: web.Application,
    *,
    metrics: Metrics,
    session_pool: async_sessionmaker[AsyncSession],
    billing: Billing,
    check_timeout: float = CHECK_TIMEOUT,
) -> None:
    """GET /healthz (the process answers), /readyz (database and billing answer), /metrics."""
    from aiohttp import web  # imported only by a bot that serves HTTP (1.5 MB)

    async def healthz(request: web.Request) -> web.Response:
        del request
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        del request
        readiness = await check_readiness(session_pool, billing, check_timeout=check_timeout)
        if not readiness.ready:
            log.warning("not ready: %s", readiness.checks)
        status = 200 if readiness.ready else 503
        body = {"status": "ready" if readiness.ready else "not ready", **readiness.checks}
        return web.json_response(body, status=status)

    async def metrics_page(request: web.Request) -> web.Response:
        del request
        try:
            await metrics.refresh_outbox(session_pool)
        except Exception as exc:
            # The other metrics still matter most when the database is in trouble.
            log.warning("outbox gauges not refreshed: %s", type(exc).__name__)
        response = web.Response(body=metrics.render())
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        response.charset = "utf-8"
        return response

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_page)


async def start_metrics_server(
    host: str,
    port: int,
    *,
    metrics: Metrics,
    session_pool: async_sessionmaker[AsyncSession],
    billing: Billing,
) -> web.AppRunner:
    """Serve the health routes alone (polling mode); `await runner.cleanup()` stops it."""
    from aiohttp import web  # imported only by a bot that serves HTTP (1.5 MB)

    app = web.Application()
    add_health_routes(app, metrics=metrics, session_pool=session_pool, billing=billing)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("Health and metrics on http://%s:%d (/healthz, /readyz, /metrics)", host, port)
    return runner
