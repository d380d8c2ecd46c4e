"""Composition root: Settings → logging → database → billing → Bot + Dispatcher → polling.

Nothing is created at import time; `python bot.py` runs `main()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseStorage
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import BotCommand
from aiohttp import web
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import texts
from billing_client.base import Billing
from handlers import get_routers
from handlers.instrumentation import BotApiMetricsMiddleware, UpdateMetricsMiddleware
from handlers.middlewares import CurrentUserMiddleware, DbSessionMiddleware
from observability import start_metrics_server
from services.buildings import BuildingDirectory
from services.credentials import CredentialsProvider
from services.metrics import MeteredBilling, Metrics
from settings import Settings, describe_error, load_settings
from storage.crypto import Vault, load_or_create_secret_key
from storage.engine import create_engine, create_session_pool, database_kind
from storage.fsm import create_fsm
from storage.migrate import upgrade_database

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


class TelegramSession(AiohttpSession):
    """aiogram's aiohttp session, keeping alive the answer models it builds.

    aiogram reads every answer with the pydantic model Response[<the method's result
    type>], built on the fly. pydantic caches such models only weakly, and a class
    always sits in a reference cycle, so the garbage collector of a busy bot freed
    them and nearly every call built its model again: about a quarter of the bot's
    CPU under load (benchmarks/, profile). Holding one reference per result type
    makes pydantic's cache hit.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._response_models: dict[Any, type[Response[Any]]] = {}

    def check_response(
        self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int, content: str
    ) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in self._response_models:
            self._response_models[returning] = Response[returning]  # type: ignore[valid-type]
        return super().check_response(bot, method, status_code, content)


def create_bot(settings: Settings, metrics: Metrics | None = None) -> Bot:
    session = TelegramSession(api=TelegramAPIServer.from_base(settings.TELEGRAM_API_URL))
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
    billing calls are counted (services.metrics).
    """
    if metrics is not None:
        billing = MeteredBilling(billing, metrics)
    fsm_storage, isolation = create_fsm(settings.REDIS_URL, session_pool)
    dispatcher = Dispatcher(
        storage=storage or fsm_storage,
        events_isolation=isolation,
        settings=settings,
        billing=billing,
        credentials=CredentialsProvider(vault),
        directory=BuildingDirectory(billing),
        session_pool=session_pool,
    )
    if metrics is not None:
        dispatcher.update.outer_middleware(UpdateMetricsMiddleware(metrics))
    dispatcher.update.outer_middleware(DbSessionMiddleware(session_pool))
    dispatcher.update.outer_middleware(CurrentUserMiddleware())
    dispatcher.include_routers(*get_routers())
    return dispatcher


def bot_commands() -> list[BotCommand]:
    return [BotCommand(command=name, description=text) for name, text in texts.COMMANDS.items()]


async def run(settings: Settings) -> None:
    from billing_client import describe_billing, open_billing

    secret_key = load_or_create_secret_key(
        settings.SECRET_KEY.get_secret_value() if settings.SECRET_KEY else None,
        settings.DATA_DIR,
    )
    vault = Vault.from_setting(secret_key)
    engine = create_engine(settings.DATABASE_URL)
    try:
        await upgrade_database(engine)
        session_pool = create_session_pool(engine)
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
            log.info(
                "Starting: mode=%s, api=%s, database=%s, billing=%s",
                settings.MODE.value,
                settings.TELEGRAM_API_URL,
                database_kind(settings.DATABASE_URL),
                describe_billing(settings),
            )
            # Pending updates are never dropped: readings typed while the bot was
            # down must still be handled.
            await bot.delete_webhook(drop_pending_updates=False)
            await dispatcher.start_polling(
                bot,
                handle_signals=True,
                close_bot_session=True,
                tasks_concurrency_limit=MAX_CONCURRENT_UPDATES,
            )
        finally:
            if health is not None:
                await health.cleanup()
            await billing.close()
    finally:
        await engine.dispose()
        log.info("Stopped")


def main(argv: list[str] | None = None) -> int:
    del argv
    try:
        settings = load_settings()
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        return 2
    secrets: list[Any] = [settings.BOT_TOKEN.get_secret_value()]
    if settings.SECRET_KEY:
        secrets.extend(settings.SECRET_KEY.get_secret_value().split(","))
    if settings.WEBHOOK_SECRET:
        secrets.append(settings.WEBHOOK_SECRET.get_secret_value())
    setup_logging(settings.LOG_LEVEL, secrets)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
