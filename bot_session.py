"""The HTTP session of the bot: every Bot API call retried the way Telegram asks.

- 429 Too Many Requests: wait `retry_after` (never less; a little more, with jitter,
  so that many waiting calls do not come back in the same instant), then again;
- 5xx, an HTML error page instead of JSON, a network error or timeout: back off
  exponentially with jitter, then again;
- bounded: at most MAX_ATTEMPTS tries, and a `retry_after` longer than
  MAX_RETRY_AFTER is not waited for inside a handler (the error goes up);
- a late answer to a button ("query is too old") is not an error worth breaking a
  flow for: the spinner simply stopped by itself.

getUpdates is left alone: the polling loop has its own backoff.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import AnswerCallbackQuery, GetUpdates, Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import InputFile
from aiohttp import FormData
from aiohttp.payload import BytesPayload

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
MAX_RETRY_AFTER = 60.0  # seconds; Telegram's group flood waits can be far longer
BACKOFF_BASE = 0.25
BACKOFF_MAX = 5.0
RETRY_AFTER_MARGIN = 0.05
QUERY_TOO_OLD = "query is too old"


def backoff_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter for the attempt-th retry (1-based)."""
    ceiling = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (attempt - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


def retry_after_delay(retry_after: float, rng: random.Random | None = None) -> float:
    """What to wait after a 429: retry_after plus a small margin, never less."""
    return retry_after + RETRY_AFTER_MARGIN + (rng or random).uniform(0, 0.1)


class TelegramSession(AiohttpSession):
    """aiogram's aiohttp session, keeping alive the answer models it builds.

    aiogram reads every answer with the pydantic model Response[<the method's result
    type>], built on the fly. pydantic caches such models only weakly, and a class
    always sits in a reference cycle, so the garbage collector of a busy bot freed
    them and nearly every call built its model again: about a quarter of the bot's
    CPU under load (benchmarks/, profile). Holding one reference per result type
    makes pydantic's cache hit.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._response_models: dict[Any, type[Response[Any]]] = {}

    def check_response(
        self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int, content: str
    ) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in self._response_models:
            self._response_models[returning] = Response[returning]  # type: ignore[valid-type]
        return super().check_response(bot, method, status_code, content)

    def build_form_data(  # type: ignore[override]  # aiohttp posts either
        self, bot: Bot, method: TelegramMethod[TelegramType]
    ) -> FormData | BytesPayload:
        """A call without files goes as one JSON body, as the Bot API accepts: aiohttp's
        form encoding of a Cyrillic card text cost more than the rest of the request."""
        files: dict[str, InputFile] = {}
        body: dict[str, Any] = {}
        for key, value in method.model_dump(warnings=False).items():
            prepared = self.prepare_value(value, bot=bot, files=files, _dumps_json=False)
            if prepared is not None and prepared != "":  # what the form leaves out
                body[key] = prepared
        if files:
            return super().build_form_data(bot, method)
        return BytesPayload(self.json_dumps(body).encode(), content_type="application/json")


class RetryingSession(TelegramSession):
    """AiohttpSession that retries 429, 5xx and network failures, bounded."""

    def __init__(self, *args: Any, max_attempts: int = MAX_ATTEMPTS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_attempts = max_attempts

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 (aiogram's signature)
    ) -> TelegramType:
        if method.__api_method__ == GetUpdates.__api_method__:
            return await super().make_request(bot, method, timeout)
        name = method.__api_method__
        attempt = 1
        while True:
            try:
                return await super().make_request(bot, method, timeout)
            except TelegramRetryAfter as exc:
                if attempt >= self.max_attempts or exc.retry_after > MAX_RETRY_AFTER:
                    raise
                delay = retry_after_delay(exc.retry_after)
                log.info("%s: 429, retry %d after %.2f s", name, attempt, delay)
            except (TelegramServerError, TelegramNetworkError, ClientDecodeError) as exc:
                if attempt >= self.max_attempts or isinstance(exc, TelegramEntityTooLarge):
                    raise
                delay = backoff_delay(attempt)
                log.info("%s: %s, retry %d in %.2f s", name, type(exc).__name__, attempt, delay)
            except TelegramBadRequest as exc:
                if isinstance(method, AnswerCallbackQuery) and QUERY_TOO_OLD in exc.message:
                    log.debug("Callback query answered too late")
                    return True  # type: ignore[return-value]
                raise
            attempt += 1
            await asyncio.sleep(delay)
