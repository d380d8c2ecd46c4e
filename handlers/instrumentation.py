"""Feeding services.metrics from aiogram: an outer update middleware and a Bot API
request middleware (installed by bot.create_dispatcher / bot.create_bot)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import TelegramObject, Update

from services.metrics import Metrics

ERROR_KINDS: tuple[tuple[type[Exception], str], ...] = (
    (TelegramRetryAfter, "retry_after"),
    (TelegramBadRequest, "bad_request"),
    (TelegramForbiddenError, "forbidden"),
    (TelegramNotFound, "not_found"),
    (TelegramConflictError, "conflict"),
    (TelegramUnauthorizedError, "unauthorized"),
    (TelegramServerError, "server_error"),
    (TelegramNetworkError, "network"),
)


def error_kind(exc: BaseException) -> str:
    """The metric label of a failed Bot API call."""
    for cls, kind in ERROR_KINDS:
        if isinstance(exc, cls):
            return kind
    return "other"


class UpdateMetricsMiddleware(BaseMiddleware):
    """Counts each update by type and outcome and times its whole handling."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        update_type = event.event_type if isinstance(event, Update) else type(event).__name__
        started = time.monotonic()
        outcome = "error"
        try:
            result = await handler(event, data)
            outcome = "unhandled" if result is UNHANDLED else "handled"
            return result
        finally:
            self._metrics.observe_update(update_type, outcome, time.monotonic() - started)


class BotApiMetricsMiddleware(BaseRequestMiddleware):
    """Counts failed Bot API calls by method and kind of error."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        try:
            return await make_request(bot, method)
        except Exception as exc:
            self._metrics.telegram_errors.labels(method.__api_method__, error_kind(exc)).inc()
            raise
