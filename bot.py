"""Composition root: Settings → logging → database → billing → Bot + Dispatcher → polling.

Nothing is created at import time; `python bot.py` runs `main()`.
`python bot.py --rotate-secrets` re-encrypts the stored passwords with the first key of
SECRET_KEY and exits (storage/crypto.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from settings import Mode, Settings, describe_error, load_settings


def checked_settings() -> Settings | None:
    """The settings; None after one line on stderr naming the wrong setting."""
    try:
        return load_settings()
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        return None


# `python bot.py` checks its settings before the imports below (E402 allowed in
# pyproject), which take seconds of CPU: aiogram builds hundreds of pydantic models.
# A wrong setting is reported at once, not after them.
if __name__ == "__main__" and checked_settings() is None:
    sys.exit(2)

import uvloop
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseStorage
from aiogram.types import BotCommand
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing_client.base import Billing
from bot_session import RetryingSession
from handlers import get_routers
from handlers.instrumentation import BotApiMetricsMiddleware, UpdateMetricsMiddleware
from handlers.middlewares import CurrentUserMiddleware, DbSessionMiddleware
from handlers.readings import result_notifier
from handlers.supervisor import TelegramGroupTransport
from handlers.team import inspector_commands, show_role_commands
from observability import add_health_routes, start_metrics_server
from services import team
from services.breaker import CircuitBreaker
from services.buildings import BuildingDirectory
from services.credentials import (
    CredentialsProvider,
    rotate_stored_passwords,
    unreadable_passwords,
)
from services.digest import DigestConfig, DigestScheduler
from services.group_posts import GroupPoster
from services.metrics import MeteredBilling, Metrics
from services.outbox import Outbox, OutboxPolicy
from services.submission import RetryPolicy
from services.summary import SummarySweeper, summary_hook
from storage.crypto import SecretKeyFileError, Vault, load_or_create_secret_key
from storage.engine import create_engine, create_session_pool, database_kind
from storage.fsm import create_fsm
from storage.migrate import upgrade_database
from storage.models import Role
from updates import UpdateRunner

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("bot")

# One update holds up to three connections of the bot's pool at a time (its own
# session, a call of the FSM storage, a service's own session). Unbounded, a burst of
# updates from 15 inspectors took every connection and their FSM calls waited for
# each other until the pool's 30 s timeout (found by benchmarks/). Five at a time stay
# within the smallest pool (SQLite's 5 + 10 overflow); SQLite writes one at a time anyway.
MAX_CONCURRENT_UPDATES = 5


class RedactSecrets(logging.Filter):
    """Replaces every known secret in a log record by '***' (defence in depth)."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self._secrets:
            redacted = redacted.replace(secret, "***")
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            for secret in self._secrets:
                if secret in text:
                    record.exc_info = None
                    record.exc_text = None
                    redacted += " (traceback withheld: it held a secret)"
                    break
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def setup_logging(level: str, secrets: list[str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log and aiogram's per-update lines are noise at INFO.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    # SQL parameters can hold password hashes: never below WARNING.
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)


def create_bot(settings: Settings, metrics: Metrics | None = None) -> Bot:
    session = RetryingSession(api=TelegramAPIServer.from_base(settings.TELEGRAM_API_URL))
    if metrics is not None:
        session.middleware(BotApiMetricsMiddleware(metrics))
    return Bot(
        token=settings.BOT_TOKEN.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )


def create_dispatcher(
    *,
    settings: Settings,
    session_pool: async_sessionmaker[AsyncSession],
    billing: Billing,
    vault: Vault,
    storage: BaseStorage | None = None,
    metrics: Metrics | None = None,
) -> Dispatcher:
    """The production dispatcher: storage, middlewares, routers and shared services.

    FSM storage and event isolation follow REDIS_URL (storage.fsm.create_fsm);
    `storage` overrides the storage only (tests). With `metrics`, updates and
    billing calls are counted (services.metrics). The outbox worker and the group
    poster start and stop with the dispatcher (polling or webhook).
    """
    if metrics is not None:
        billing = MeteredBilling(billing, metrics)
    fsm_storage, isolation = create_fsm(settings.REDIS_URL, session_pool)
    credentials = CredentialsProvider(vault)
    outbox = create_outbox(settings, session_pool, billing, credentials)
    outbox.on_finished.append(
        summary_hook(session_pool, default_chat_id=settings.SUPERVISOR_CHAT_ID, tz=settings.tz)
    )
    dispatcher = Dispatcher(
        storage=storage or fsm_storage,
        events_isolation=isolation,
        settings=settings,
        billing=billing,
        credentials=credentials,
        directory=BuildingDirectory(billing),
        session_pool=session_pool,
        outbox=outbox,
    )
    dispatcher.startup.register(start_outbox)
    dispatcher.shutdown.register(stop_outbox)
    dispatcher.startup.register(start_group_poster)
    dispatcher.shutdown.register(stop_group_poster)
    if metrics is not None:
        dispatcher.update.outer_middleware(UpdateMetricsMiddleware(metrics))
    dispatcher.update.outer_middleware(DbSessionMiddleware(session_pool))
    dispatcher.update.outer_middleware(CurrentUserMiddleware())
    dispatcher.include_routers(*get_routers())
    return dispatcher


def create_outbox(
    settings: Settings,
    session_pool: async_sessionmaker[AsyncSession],
    billing: Billing,
    credentials: CredentialsProvider,
) -> Outbox:
    """The outbox worker with its timings and circuit breaker from settings.

    `outbox.on_finished` takes hooks run for every settled batch (group summary).
    """
    policy = OutboxPolicy(
        retry=RetryPolicy(
            base=settings.OUTBOX_RETRY_BASE,
            ceiling=max(settings.OUTBOX_RETRY_BASE, settings.OUTBOX_RETRY_MAX),
            give_up_after=timedelta(hours=settings.OUTBOX_GIVE_UP_HOURS),
        ),
        lease=settings.OUTBOX_LEASE,
        concurrency=settings.OUTBOX_CONCURRENCY,
    )
    breaker = CircuitBreaker(
        threshold=settings.BILLING_BREAKER_FAILURES,
        cooldown=settings.BILLING_BREAKER_COOLDOWN,
        max_cooldown=max(settings.BILLING_BREAKER_COOLDOWN, 300.0),
    )
    return Outbox(session_pool, billing, credentials, policy=policy, breaker=breaker)


async def start_outbox(bot: Bot, outbox: Outbox) -> None:
    outbox.start(result_notifier(bot))


async def stop_outbox(outbox: Outbox) -> None:
    await outbox.stop()


def create_group_poster(
    bot: Bot,
    dispatcher: Dispatcher,
    settings: Settings,
    *,
    digest_clock: Callable[[], datetime] | None = None,
) -> GroupPoster:
    """The background sender of group messages (summaries, digests), paced per group."""
    session_pool = dispatcher["session_pool"]
    digest = DigestScheduler(
        session_pool,
        dispatcher["billing"],
        dispatcher["credentials"],
        DigestConfig(
            enabled=settings.DIGEST_ENABLED,
            hour=settings.DIGEST_HOUR,
            start_day=settings.WINDOW_START_DAY,
            end_day=settings.WINDOW_END_DAY,
            tz=settings.tz,
            default_chat_id=settings.SUPERVISOR_CHAT_ID,
        ),
        clock=digest_clock,
    )
    sweeper = SummarySweeper(
        session_pool, default_chat_id=settings.SUPERVISOR_CHAT_ID, tz=settings.tz
    )

    async def scheduled() -> None:
        await sweeper()
        await digest()

    return GroupPoster(session_pool, TelegramGroupTransport(bot), on_tick=scheduled)


async def show_admin_commands(bot: Bot, session_pool: async_sessionmaker[AsyncSession]) -> None:
    """Admins linked before a restart (or before teams existed) get the team's commands."""
    async with session_pool() as session:
        admin_ids = await team.admins(session)
    for admin_id in admin_ids:
        await show_role_commands(bot, admin_id, Role.ADMIN)


async def start_group_poster(bot: Bot, dispatcher: Dispatcher, settings: Settings) -> None:
    """Runs the group poster beside the dispatcher (polling or webhook)."""
    poster = create_group_poster(
        bot, dispatcher, settings, digest_clock=dispatcher.get("digest_clock")
    )
    dispatcher["group_poster"] = poster
    dispatcher["group_posting"] = asyncio.create_task(poster.run())


async def stop_group_poster(dispatcher: Dispatcher) -> None:
    poster: GroupPoster | None = dispatcher.get("group_poster")
    if poster is None:
        return
    poster.stop()
    try:
        await asyncio.wait_for(dispatcher["group_posting"], 10)
    except TimeoutError:
        log.warning("Group poster did not stop in 10 s")


async def receive_updates(
    runner: UpdateRunner,
    settings: Settings,
    *,
    handle_signals: bool = True,
    add_routes: Callable[[web.Application], None] | None = None,
) -> None:
    """Polling or webhook through the inbox (updates.py) until SIGTERM/SIGINT or stop().

    `add_routes` adds routes (health, metrics) to the webhook's web server.
    """
    if handle_signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, runner.stop)
    allowed = runner.dispatcher.resolve_used_update_types()
    await runner.start()
    try:
        if settings.MODE is Mode.WEBHOOK:
            from webhook import create_web_app, serve_webhook  # aiohttp.web: webhook mode only

            assert settings.WEBHOOK_URL is not None and settings.WEBHOOK_SECRET is not None
            secret = settings.WEBHOOK_SECRET.get_secret_value()
            app = create_web_app(
                runner, path=urlsplit(settings.WEBHOOK_URL).path or "/", secret=secret
            )
            if add_routes is not None:
                add_routes(app)
            await serve_webhook(
                runner,
                url=settings.WEBHOOK_URL,
                secret=secret,
                host=settings.WEBHOOK_HOST,
                port=settings.WEBHOOK_PORT,
                allowed_updates=allowed,
                app=app,
            )
        else:
            # Pending updates are never dropped: readings typed while the bot was
            # down must still be handled.
            await runner.bot.delete_webhook(drop_pending_updates=False)
            await runner.run_polling(allowed)
    finally:
        await runner.shutdown()


def bot_commands() -> list[BotCommand]:
    """The default command menu (an admin's own menu adds the team's)."""
    return inspector_commands()


async def rotate_secrets(settings: Settings, vault: Vault) -> int:
    """`--rotate-secrets`: re-encrypt every stored password with the first key; the exit
    code is 1 if a password matches no key (kept as it was: drop no key yet)."""
    engine = create_engine(settings.DATABASE_URL)
    try:
        await upgrade_database(engine)
        rotation = await rotate_stored_passwords(create_session_pool(engine), vault)
    finally:
        await engine.dispose()
    log.info(
        "Re-encrypted %d stored password(s) with the first key of SECRET_KEY", rotation.rotated
    )
    if rotation.unreadable:
        log.error(
            "%d stored password(s) match no key of SECRET_KEY and were left as they are "
            "(accounts: %s); a user of each account must log in again",
            len(rotation.unreadable),
            ", ".join(rotation.unreadable),
        )
        return 1
    log.info("The other keys may now be removed from SECRET_KEY")
    return 0


async def check_secret_key(session_pool: async_sessionmaker[AsyncSession], vault: Vault) -> None:
    """Say at start, once, when SECRET_KEY does not open stored passwords: a changed or
    mistyped key would otherwise show only as users asked to log in again."""
    stored, unreadable = await unreadable_passwords(session_pool, vault)
    if unreadable:
        log.error(
            "%d of %d stored account password(s) match no key of SECRET_KEY (accounts: %s): "
            "their users are asked to log in again. If SECRET_KEY changed by mistake, stop "
            "the bot and set the key they were stored with (a new key goes first, the old "
            "one after it: --rotate-secrets)",
            len(unreadable),
            stored,
            ", ".join(unreadable),
        )


async def run(settings: Settings, vault: Vault) -> None:
    from billing_client import describe_billing, open_billing

    engine = create_engine(settings.DATABASE_URL)
    try:
        await upgrade_database(engine)
        session_pool = create_session_pool(engine)
        await check_secret_key(session_pool, vault)
        billing = await open_billing(settings)
        metrics = Metrics()
        health: web.AppRunner | None = None
        try:
            bot = create_bot(settings, metrics)
            dispatcher = create_dispatcher(
                settings=settings,
                session_pool=session_pool,
                billing=billing,
                vault=vault,
                metrics=metrics,
            )
            if settings.METRICS_PORT:
                health = await start_metrics_server(
                    settings.METRICS_HOST,
                    settings.METRICS_PORT,
                    metrics=metrics,
                    session_pool=session_pool,
                    billing=billing,
                )
            await bot.set_my_commands(bot_commands())
            await show_admin_commands(bot, session_pool)
            log.info(
                "Starting: mode=%s, api=%s, database=%s, billing=%s",
                settings.MODE.value,
                settings.TELEGRAM_API_URL,
                database_kind(settings.DATABASE_URL),
                describe_billing(settings),
            )
            # Everything built so far (modules, models, routers) lives as long as the
            # process: the garbage collector's full passes stop walking it. Without
            # this each full pass walked about 240,000 objects, 0.1-0.25 s during
            # which no update was answered (benchmarks/, paced latency).
            gc.freeze()
            runner = UpdateRunner(
                bot=bot,
                dispatcher=dispatcher,
                session_pool=session_pool,
                concurrency=MAX_CONCURRENT_UPDATES,
                # SQLite serves one process: claims found at start are a dead one's.
                sole_instance=database_kind(settings.DATABASE_URL) == "sqlite",
            )
            try:
                await receive_updates(
                    runner,
                    settings,
                    add_routes=lambda app: add_health_routes(
                        app, metrics=metrics, session_pool=session_pool, billing=billing
                    ),
                )
            finally:
                await bot.session.close()
        finally:
            if health is not None:
                await health.cleanup()
            await billing.close()
    finally:
        await engine.dispose()
        log.info("Stopped")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bot.py", description="The meter readings bot.")
    parser.add_argument(
        "--rotate-secrets",
        action="store_true",
        help="re-encrypt the stored passwords with the first key of SECRET_KEY, then exit",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = checked_settings()
    if settings is None:
        return 2
    secrets: list[Any] = [settings.BOT_TOKEN.get_secret_value()]
    if settings.SECRET_KEY:
        secrets.extend(settings.SECRET_KEY.get_secret_value().split(","))
    if settings.WEBHOOK_SECRET:
        secrets.append(settings.WEBHOOK_SECRET.get_secret_value())
    setup_logging(settings.LOG_LEVEL, secrets)
    try:
        secret_key = load_or_create_secret_key(
            settings.SECRET_KEY.get_secret_value() if settings.SECRET_KEY else None,
            settings.DATA_DIR,
        )
    except SecretKeyFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    vault = Vault.from_setting(secret_key)
    if args.rotate_secrets:
        return uvloop.run(rotate_secrets(settings, vault))
    with contextlib.suppress(KeyboardInterrupt):
        # libuv's event loop: the same work costs about 7 % less CPU (benchmarks/).
        uvloop.run(run(settings, vault))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
