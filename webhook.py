"""The webhook's HTTP server: Telegram posts updates, they go into the inbox (updates.py).

Imported only in webhook mode: aiohttp's web server costs a polling bot 1.5 MB.
"""

from __future__ import annotations

import hmac
import logging

from aiogram.exceptions import TelegramAPIError
from aiogram.types import Update
from aiohttp import web
from pydantic import ValidationError

from updates import UpdateRunner

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# Other routes of the same app (health, metrics) find the runner here.
RUNNER_KEY = web.AppKey("runner", UpdateRunner)


def create_web_app(runner: UpdateRunner, *, path: str, secret: str) -> web.Application:
    """The aiohttp application that receives Telegram's webhook; add other routes to it.

    A request without the right secret header is refused with 403. An update is
    answered 200 only once it is committed to the inbox; if storing fails Telegram
    gets 500 and delivers it again.
    """
    app = web.Application()
    app[RUNNER_KEY] = runner

    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return web.Response(status=403, text="forbidden")
        if runner.stopping:
            return web.Response(status=503, text="stopping")
        try:
            update = Update.model_validate(await request.json(), context={"bot": runner.bot})
        except (ValueError, ValidationError):
            return web.Response(status=400, text="not an update")
        try:
            await runner.accept([update])
        except Exception as exc:
            log.error("Update %s not stored: %s", update.update_id, type(exc).__name__)
            return web.Response(status=500, text="not stored")
        return web.Response(status=200)

    app.router.add_post(path, receive)
    return app


async def serve_webhook(
    runner: UpdateRunner,
    *,
    url: str,
    secret: str,
    host: str,
    port: int,
    allowed_updates: list[str] | None = None,
    app: web.Application | None = None,
) -> None:
    """Listen on host:port, tell Telegram the URL and secret, and serve until stop()."""
    from urllib.parse import urlsplit

    path = urlsplit(url).path or "/"
    web_app = app or create_web_app(runner, path=path, secret=secret)
    site_runner = web.AppRunner(web_app, access_log=None)
    await site_runner.setup()
    site = web.TCPSite(site_runner, host, port)
    await site.start()
    try:
        await runner.bot.set_webhook(
            url,
            secret_token=secret,
            allowed_updates=allowed_updates,
            drop_pending_updates=False,
        )
        log.info("Webhook set; listening on %s:%s%s", host, port, path)
        await runner.wait_stopped()
    except TelegramAPIError as exc:
        log.error("Could not set the webhook: %s", exc.message)
        raise
    finally:
        await site_runner.cleanup()
