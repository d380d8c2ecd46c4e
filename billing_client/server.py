"""The reference server: the embedded billing served over billing API v1 (aiohttp).

    python -m billing_client serve --host 127.0.0.1 --port 8090
    # base URL for the bot: BILLING_URL=http://127.0.0.1:8090/api/v1

It shows an integrator the contract at work, and it is what the HTTP client's
tests talk to. `create_app(backend, faults=Faults(...))` lets a test make the
server misbehave on purpose: 5xx (before or after doing the work), delays after
committing (so the client times out on a request that did succeed), 429 with
Retry-After, malformed or oddly shaped answers, dropped connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from billing_client.embedded.backend import EmbeddedBilling
from billing_client.errors import (
    BillingError,
    BillingRequestError,
    IdempotencyConflict,
    InvalidCredentials,
    NotFound,
    TokenExpired,
    TooManyAttempts,
)
from billing_client.http import describe_validation_error

logger = logging.getLogger(__name__)

DEFAULT_BASE_PATH = "/api/v1"
MAX_BODY_BYTES = 8 * 1024 * 1024

FaultKind = Literal[
    "error", "delay", "throttle", "malformed", "wrong_shape", "extra_fields", "drop"
]


@dataclass(frozen=True)
class Fault:
    """One way to misbehave on one request.

    error: answer `status` with an error body, before the backend runs
        (`after_commit=False`) or after it has done and committed the work.
    delay: do the work, then wait `seconds` before answering.
    throttle: answer 429 too_many_attempts with Retry-After `seconds`, doing nothing.
    malformed: do the work, answer 200 with a body that is not JSON.
    wrong_shape: do the work, answer 200 with JSON that misses the contract's fields.
    extra_fields: do the work, answer with unknown fields added to every object.
    drop: do the work, then close the connection without an answer.
    """

    kind: FaultKind
    status: int = 503
    seconds: float = 0.0
    after_commit: bool = True

    @classmethod
    def error(
        cls, status: int = 503, *, after_commit: bool = True, retry_after: float | None = None
    ) -> Fault:
        """A 5xx (or any status); `retry_after` adds a Retry-After header."""
        return cls("error", status=status, seconds=retry_after or 0.0, after_commit=after_commit)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Answer `seconds` late, after the work is committed."""
        return cls("delay", seconds=seconds)

    @classmethod
    def throttle(cls, retry_after: float = 1.0) -> Fault:
        """429 with Retry-After, without doing the work."""
        return cls("throttle", status=429, seconds=retry_after, after_commit=False)

    @classmethod
    def malformed(cls) -> Fault:
        """200 with a body that is not JSON."""
        return cls("malformed")

    @classmethod
    def wrong_shape(cls) -> Fault:
        """200 with JSON that does not follow the contract."""
        return cls("wrong_shape")

    @classmethod
    def extra_fields(cls) -> Fault:
        """A correct answer with unknown fields that a client must ignore."""
        return cls("extra_fields")

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without answering, after the work is committed."""
        return cls("drop")


class Faults:
    """Fault injection for the reference server, scripted or random, and a request log.

    `push(fault, route=...)` queues faults for the next requests of a route
    ("login", "buildings", "meters", "submit", "readings"; None: any route).
    The rates make every request fail with that probability (seeded, so a
    failing run can be repeated). `hits` counts the requests each route received.
    """

    def __init__(
        self,
        *,
        error_rate: float = 0.0,
        error_status: int = 503,
        error_after_commit: bool = True,
        delay_rate: float = 0.0,
        delay_seconds: float = 0.0,
        throttle_rate: float = 0.0,
        retry_after: float = 1.0,
        seed: int = 0,
    ) -> None:
        self.error_rate = error_rate
        self.error_status = error_status
        self.error_after_commit = error_after_commit
        self.delay_rate = delay_rate
        self.delay_seconds = delay_seconds
        self.throttle_rate = throttle_rate
        self.retry_after = retry_after
        self.hits: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._queue: deque[tuple[str | None, Fault]] = deque()
        self._released: asyncio.Event | None = None

    def push(self, *faults: Fault, route: str | None = None) -> None:
        """Queue faults for the next requests to `route` (None: any route), in order."""
        self._queue.extend((route, fault) for fault in faults)

    def pending(self) -> int:
        """How many queued faults have not fired yet."""
        return len(self._queue)

    def pick(self, route: str) -> Fault | None:
        """The fault for this request, if any; also counts the request."""
        self.hits[route] += 1
        for index, (wanted, fault) in enumerate(self._queue):
            if wanted is None or wanted == route:
                del self._queue[index]
                return fault
        roll = self._random.random()
        if roll < self.throttle_rate:
            return Fault.throttle(self.retry_after)
        roll -= self.throttle_rate
        if roll < self.error_rate:
            return Fault.error(self.error_status, after_commit=self.error_after_commit)
        roll -= self.error_rate
        if roll < self.delay_rate:
            return Fault.delay(self.delay_seconds)
        return None

    async def sleep(self, seconds: float) -> None:
        """Wait for a delay fault; `release()` ends every such wait at once."""
        if self._released is None:
            self._released = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._released.wait(), seconds)

    def release(self) -> None:
        """End pending delays (call before stopping the server, so it stops at once)."""
        if self._released is None:
            self._released = asyncio.Event()
        self._released.set()


class _LoginBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    login: str
    password: str


class _Reading(BaseModel):
    """A reading as received: the value is judged by the backend, not refused here."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    meter_id: str
    value: Any
    taken_at: datetime


class _SubmitBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    readings: list[_Reading]


BACKEND: web.AppKey[EmbeddedBilling] = web.AppKey("billing_backend", EmbeddedBilling)
FAULTS: web.AppKey[Faults | None] = web.AppKey("billing_faults")


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        data,
        status=status,
        headers=headers,
        dumps=lambda value: json.dumps(value, ensure_ascii=False),
    )


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return _json({"error": {"code": code, "message": message}}, status, headers)


def _status_of(exc: BillingError) -> int:
    if isinstance(exc, InvalidCredentials | TokenExpired):
        return 401
    if isinstance(exc, TooManyAttempts):
        return 429
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, IdempotencyConflict):
        return 409
    if isinstance(exc, BillingRequestError):
        return exc.status
    return 500


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every failure leaves as the contract's error envelope."""
    try:
        return await handler(request)
    except BillingError as exc:
        headers = None
        if isinstance(exc, TooManyAttempts):
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
        return _error(_status_of(exc), exc.code, str(exc), headers)
    except web.HTTPException as exc:
        if exc.status == 404:
            return _error(404, "not_found", "Нет такого адреса в API")
        if exc.status == 405:
            return _error(405, "method_not_allowed", "Этот метод не поддерживается здесь")
        if exc.status == 413:
            return _error(413, "body_too_large", "Слишком большой запрос")
        raise
    except Exception:
        logger.exception("billing server failed on %s %s", request.method, request.path)
        return _error(500, "internal_error", "Внутренняя ошибка биллинга")


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise BillingRequestError(
            "Нужен заголовок Authorization: Bearer <token>", status=401, code="unauthorized"
        )
    return token.strip()


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    try:
        raw = await request.read()
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise BillingRequestError(
            f"Тело запроса не по контракту: {describe_validation_error(exc)}",
            status=400,
            code="invalid_request",
        ) from None


def _with_extra_fields(data: Any) -> Any:
    if isinstance(data, dict):
        return {
            **{key: _with_extra_fields(value) for key, value in data.items()},
            "x_unknown": {"added": "by fault injection"},
        }
    if isinstance(data, list):
        return [_with_extra_fields(item) for item in data]
    return data


async def _serve(
    request: web.Request, route: str, work: Callable[[], Awaitable[BaseModel]]
) -> web.StreamResponse:
    faults = request.app[FAULTS]
    fault = faults.pick(route) if faults is not None else None
    if fault is not None and not fault.after_commit:
        if fault.kind == "throttle":
            retry_after = str(max(0, math.ceil(fault.seconds)))
            return _error(
                429, "too_many_attempts", "Слишком много запросов", {"Retry-After": retry_after}
            )
        if fault.kind == "error":
            return _fault_error(fault)
    data = (await work()).model_dump(mode="json")
    if fault is None:
        return _json(data)
    logger.info("billing server: injecting %s into %s %s", fault.kind, request.method, route)
    if fault.kind == "error":
        return _fault_error(fault)
    if fault.kind == "delay":
        assert faults is not None
        await faults.sleep(fault.seconds)
        return _json(data)
    if fault.kind == "malformed":
        return web.Response(
            status=200, body=b'{"this is": not json', content_type="application/json"
        )
    if fault.kind == "wrong_shape":
        return _json({"unexpected": True})
    if fault.kind == "extra_fields":
        return _json(_with_extra_fields(data))
    if fault.kind == "drop":
        if request.transport is not None:
            request.transport.close()
        raise asyncio.CancelledError  # nothing more can be written on a closed socket
    return _json(data)


def _fault_error(fault: Fault) -> web.Response:
    headers = {"Retry-After": str(math.ceil(fault.seconds))} if fault.seconds else None
    return _error(fault.status, "unavailable", "Биллинг временно недоступен", headers)


async def _login(request: web.Request) -> web.StreamResponse:
    backend = request.app[BACKEND]

    async def work() -> BaseModel:
        body = await _body(request, _LoginBody)
        return await backend.login(body.login, SecretStr(body.password))

    return await _serve(request, "login", work)


async def _buildings(request: web.Request) -> web.StreamResponse:
    backend = request.app[BACKEND]

    async def work() -> BaseModel:
        return await backend.buildings_with_token(_bearer(request))

    return await _serve(request, "buildings", work)


async def _meters(request: web.Request) -> web.StreamResponse:
    backend = request.app[BACKEND]
    building_id = request.match_info["building_id"]

    async def work() -> BaseModel:
        return await backend.meters_with_token(_bearer(request), building_id)

    return await _serve(request, "meters", work)


async def _submit(request: web.Request) -> web.StreamResponse:
    backend = request.app[BACKEND]
    building_id = request.match_info["building_id"]

    async def work() -> BaseModel:
        token = _bearer(request)
        key = request.headers.get("Idempotency-Key", "")
        if not key.strip():
            raise BillingRequestError(
                "Нужен заголовок Idempotency-Key", status=400, code="idempotency_key_required"
            )
        body = await _body(request, _SubmitBody)
        return await backend.submit_with_token(token, building_id, body.readings, key)

    return await _serve(request, "submit", work)


async def _readings(request: web.Request) -> web.StreamResponse:
    backend = request.app[BACKEND]
    building_id = request.match_info["building_id"]

    async def work() -> BaseModel:
        period = request.query.get("period")
        return await backend.readings_with_token(_bearer(request), building_id, period)

    return await _serve(request, "readings", work)


def _base(base_path: str) -> str:
    """ "/api/v1" from "api/v1/", "/api/v1" or "/api/v1/"; "" for the root."""
    stripped = base_path.strip("/")
    return "/" + stripped if stripped else ""


def create_app(
    backend: EmbeddedBilling,
    *,
    faults: Faults | None = None,
    base_path: str = DEFAULT_BASE_PATH,
) -> web.Application:
    """An aiohttp application serving billing API v1 under `base_path` ("" for the root)."""
    base = _base(base_path)
    app = web.Application(middlewares=[_errors], client_max_size=MAX_BODY_BYTES)
    app[BACKEND] = backend
    app[FAULTS] = faults
    app.router.add_post(f"{base}/auth/login", _login)
    app.router.add_get(f"{base}/buildings", _buildings)
    app.router.add_get(f"{base}/buildings/{{building_id}}/meters", _meters)
    app.router.add_post(f"{base}/buildings/{{building_id}}/readings", _submit)
    app.router.add_get(f"{base}/buildings/{{building_id}}/readings", _readings)
    return app


async def run_server(
    backend: EmbeddedBilling,
    *,
    host: str = "127.0.0.1",
    port: int = 8090,
    base_path: str = DEFAULT_BASE_PATH,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until cancelled; `ready` receives the base URL once the port is open."""
    runner = web.AppRunner(create_app(backend, base_path=base_path), shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        # The bound port, not the asked one: --port 0 picks a free port.
        bound = runner.addresses[0][1] if runner.addresses else port
        shown_host = f"[{host}]" if ":" in host else host
        url = f"http://{shown_host}:{bound}{_base(base_path)}"
        logger.info("billing API v1 served at %s", url)
        if ready is not None:
            ready(url)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
