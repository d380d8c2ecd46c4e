"""A fake Telegram Bot API server for end-to-end tests of the real bot process.

    async with FakeTelegram(bot_token=BOT_TOKEN, bot_username="meters_test_bot") as tg:
        env = {"TELEGRAM_API_URL": tg.api_url, ...}   # aiogram: TelegramAPIServer.from_base
        phone = tg.user(user_id=1001, first_name="Иван", username="ivan")
        reply = await phone.ask("/start")

It speaks the Bot API over real HTTP on 127.0.0.1 (JSON, urlencoded and multipart bodies,
file downloads), answers errors with Telegram's codes and descriptions, long-polls and
delivers webhooks, records every call, and injects faults (see faults.py). This module is
the server's state and plumbing; the method implementations are in methods.py, the user
side (phones, groups) in phone.py, and what a phone sees is built by screen.py.
"""

# Every wait takes its own timeout: a test states its time budget where it waits.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import inspect
import itertools
import json
import math
import mimetypes
import re
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import aiogram.methods
import aiohttp
from aiohttp import web

from .faults import FaultRule, Faults, RateLimit, SlidingWindow
from .methods import HANDLERS
from .screen import Screen
from .state import (
    DEFAULT_UPDATE_TYPES,
    GROUP_ANONYMOUS_BOT,
    NOT_MODIFIED,
    ApiError,
    Call,
    CallbackQueryState,
    ChangeFeed,
    ChatEvent,
    ChatState,
    HarnessError,
    JsonDict,
    Params,
    QueuedUpdate,
    StoredFile,
    StoredMessage,
    Throttle,
    Upload,
    WebhookDelivery,
    WebhookState,
    bad_request,
    commands_key,
    forbidden,
    server_error,
    unix_now,
)
from .telegram_html import (
    EntityParseError,
    command_entities,
    parse_html,
    trim_plain,
    utf16_slice,
)

if TYPE_CHECKING:
    from .phone import Group, Phone

# Digits kept short on purpose: it must pass the bot's token check but never look real.
BOT_TOKEN = "123456:TEST-FAKE-TOKEN-aaaaaaaaaaaaaaaaaaaaaaaaaa"
BOT_USERNAME = "meters_test_bot"

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
UPLOAD_LIMIT = 50 * 1024 * 1024

# Every method of the Bot API (as aiogram knows it), lower-case -> canonical name: Telegram
# matches method names case-insensitively and answers 404 only for names it does not know.
KNOWN_METHODS: dict[str, str] = {
    name.lower(): name
    for cls in vars(aiogram.methods).values()
    if inspect.isclass(cls) and isinstance(name := getattr(cls, "__api_method__", None), str)
}

_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
_FILE_ID_PREFIX = {
    "photo": "AgACAgIAAxkBAAI",
    "document": "BQACAgIAAxkBAAI",
    "audio": "CQACAgIAAxkBAAI",
    "video": "BAACAgIAAxkBAAI",
    "animation": "CgACAgIAAxkBAAI",
    "voice": "AwACAgIAAxkBAAI",
    "video_note": "DQACAgIAAxkBAAI",
    "sticker": "CAACAgIAAxkBAAI",
}
_TOKEN_RE = re.compile(r"^(\d{5,20}):[A-Za-z0-9_-]{30,64}$")


class Watched(Protocol):
    """What FakeTelegram.watch() needs from a bot process (process.BotProcess)."""

    name: str

    def unexpected_exit(self) -> str | None: ...

    def log_tail(self, lines: int = 40) -> str: ...

    def add_exit_hook(self, hook: Callable[[int], None]) -> None: ...


class BotDied(AssertionError):
    """A watched bot process exited while a test was waiting for it."""


class WaitTimeout(AssertionError):
    """A wait in a test ran out; the message shows the chat, the calls and the bot's log."""


@dataclass(frozen=True)
class EarlyRetry:
    """A call repeated before the retry_after of an earlier 429 had passed."""

    throttle: Throttle
    call: Call

    @property
    def too_early_by(self) -> float:
        return self.throttle.at + self.throttle.retry_after - self.call.at


class FakeTelegram:
    """The fake Bot API server. Use as `async with FakeTelegram(...) as tg:`."""

    def __init__(
        self,
        bot_token: str = BOT_TOKEN,
        bot_username: str = BOT_USERNAME,
        *,
        bot_first_name: str = "Показания (тест)",
        privacy_mode: bool = True,
        strict_html: bool = True,
        callback_query_ttl: float = 15.0,
        duplicate_updates: bool = False,
        webhook_retry_delay: float = 0.05,
        webhook_timeout: float = 10.0,
        webhook_connections: int | None = 1,
        first_update_id: int = 500_000_001,
        seed: int | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        match = _TOKEN_RE.match(bot_token)
        if match is None:
            raise ValueError("bot_token must look like a bot token: digits, ':', 30-64 chars")
        self.bot_token = bot_token
        self.bot_id = int(match.group(1))
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        # Telegram's default for bots: in groups they see only commands, replies to
        # them and service messages, unless they are admins.
        self.privacy_mode = privacy_mode
        self.strict_html = strict_html
        # Telegram does not document how long a callback query may be answered; a late
        # answer fails with QUERY_TOO_OLD. Tests shrink this to provoke it.
        self.callback_query_ttl = callback_query_ttl
        # Deliver every update once more after it was confirmed (dedupe tests).
        self.duplicate_updates = duplicate_updates
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_timeout = webhook_timeout
        # Webhook POSTs in flight at once; None: the max_connections given to setWebhook
        # (Telegram's default 40). One chat's updates still go one at a time, in order.
        self.webhook_connections = webhook_connections
        self.faults = Faults(seed=seed)
        self.host = host

        self.calls: list[Call] = []
        self.unknown_calls: list[Call] = []
        self.throttles: list[Throttle] = []
        self.events: list[ChatEvent] = []
        self.chats: dict[int, ChatState] = {}
        self.users: dict[int, JsonDict] = {}
        self.files: dict[str, StoredFile] = {}
        self.callback_queries: dict[str, CallbackQueryState] = {}
        self.commands: dict[tuple[str, str], list[JsonDict]] = {}
        self.bot_settings: dict[str, JsonDict] = {}
        self.webhook: WebhookState | None = None
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.drop_pending_requests: list[tuple[str, float]] = []  # (method, monotonic time)
        self.dropped_updates: list[tuple[JsonDict, str]] = []  # (update, why)
        self.downloads: list[tuple[str, float]] = []  # (file_path, monotonic time)
        self.internal_errors: list[tuple[Call, str]] = []  # requests the fake choked on
        self.feed = ChangeFeed()
        self.started_at = time.monotonic()
        # For load drivers (benchmarks/): called with every chat event as it is recorded
        # and every call as it finishes, so a driver reacts without scanning the history.
        # keep_history=False stops keeping `calls` and `events` (a long run would grow
        # them without bound); the waits of tests need them, so tests leave it on.
        self.event_listeners: list[Callable[[ChatEvent], None]] = []
        self.call_listeners: list[Callable[[Call], None]] = []
        self.keep_history = True
        self._event_seq = itertools.count(1)

        self._queue: list[QueuedUpdate] = []
        self._allowed_updates: list[str] | None = None
        self._poll_generation = 0
        self._call_seq = itertools.count(1)
        self._update_ids = itertools.count(first_update_id)
        self._file_numbers = itertools.count(1)
        self._query_ids = itertools.count(1)
        self._update_event_seq: dict[int, int] = {}
        self._retry_windows: dict[tuple[str, int | str | None], float] = {}
        self._chat_windows: defaultdict[int, SlidingWindow] = defaultdict(SlidingWindow)
        self._global_window = SlidingWindow()
        self._phones: dict[int, Phone] = {}
        self._groups: dict[int, Group] = {}
        self._watched: list[Watched] = []
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._http: aiohttp.ClientSession | None = None
        self._webhook_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeTelegram:
        app = web.Application(client_max_size=UPLOAD_LIMIT + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_route("GET", "/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        # Bind the socket ourselves: port 0 gives a free port and we can read it back.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def close(self) -> None:
        self._closing = True
        self.feed.notify()  # long polls answer [] at once instead of holding shutdown
        await self._stop_webhook_task()
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeTelegram is not started")
        return self._port

    @property
    def api_url(self) -> str:
        """Base URL for TELEGRAM_API_URL / TelegramAPIServer.from_base()."""
        return f"http://{self.host}:{self.port}"

    @property
    def bot_user(self) -> JsonDict:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    # ------------------------------------------------------------------ actors

    def user(
        self,
        user_id: int,
        first_name: str,
        username: str | None = None,
        *,
        last_name: str | None = None,
        language_code: str | None = "ru",
        phone_number: str | None = None,
        started: bool = False,
    ) -> Phone:
        """A scripted user with a private chat (chat id = user id); same id -> same phone.

        `started=True`: the user pressed Start earlier, so the bot may write first.
        """
        from .phone import Phone

        if user_id in self._phones:
            return self._phones[user_id]
        user: JsonDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        self.users[user_id] = user
        self.chats[user_id] = ChatState(
            id=user_id,
            type="private",
            user=user,
            started=started,
            chat_instance=str(-(10**18) + user_id * 7919),
        )
        phone = Phone(self, user, phone_number=phone_number or f"+7999{user_id:07d}"[-12:])
        self._phones[user_id] = phone
        return phone

    def group(
        self,
        chat_id: int,
        title: str,
        *,
        admins: Iterable[Phone | int] = (),
        members: Iterable[Phone | int] = (),
        owner: Phone | int | None = None,
        bot_in_group: bool = True,
        bot_is_admin: bool = False,
    ) -> Group:
        """A group chat. The owner defaults to the first admin.

        Ids from -1000000000000 down are supergroups, others basic groups (as in Telegram).
        With bot_in_group=False call `group.add_bot()` to produce the my_chat_member update.
        """
        from .phone import Group

        if chat_id in self._groups:
            return self._groups[chat_id]
        if chat_id >= 0:
            raise ValueError("group chat ids are negative")
        admin_ids = [self._user_id(a) for a in admins]
        member_ids = {self._user_id(m) for m in members} | set(admin_ids)
        owner_id: int | None = self._user_id(owner) if owner is not None else None
        if owner_id is None and admin_ids:
            owner_id = admin_ids[0]
        if owner_id is not None:
            member_ids.add(owner_id)
        chat = ChatState(
            id=chat_id,
            type="supergroup" if chat_id <= -1_000_000_000_000 else "group",
            title=title,
            owner=owner_id,
            admins=set(admin_ids),
            members=member_ids,
            bot_status=("administrator" if bot_is_admin else "member") if bot_in_group else "left",
            chat_instance=str(-(10**18) - abs(chat_id)),
        )
        self.chats[chat_id] = chat
        group = Group(self, chat_id)
        self._groups[chat_id] = group
        return group

    def _user_id(self, who: Phone | int) -> int:
        if isinstance(who, int):
            if who not in self.users:
                self.users[who] = {"id": who, "is_bot": False, "first_name": f"User{who}"}
            return who
        return who.user_id

    def chat(self, chat_id: int) -> ChatState:
        try:
            return self.chats[chat_id]
        except KeyError:
            raise HarnessError(
                f"no chat {chat_id}: create it with tg.user() or tg.group()"
            ) from None

    def screen(self, chat_id: int) -> Screen:
        return Screen.of(self.chat(chat_id), self.files)

    # ------------------------------------------------------------------ recording

    def now(self) -> float:
        """The clock of Call.at and `since=` arguments (time.monotonic)."""
        return time.monotonic()

    def mark(self) -> int:
        """The current event number: pass as `since=` to wait only for what comes after."""
        return len(self.events)

    def calls_of(
        self,
        method: str,
        *,
        chat_id: int | None = None,
        since: float | None = None,
        ok: bool | None = None,
    ) -> list[Call]:
        """Calls of one method (all attempts unless ok= filters), oldest first."""
        return [
            c
            for c in self.calls
            if c.method == method
            and (chat_id is None or c.chat_id == chat_id)
            and (since is None or c.at >= since)
            and (ok is None or c.ok == ok)
        ]

    def count_calls(
        self,
        method: str | None = None,
        *,
        since: float | None = None,
        chat_id: int | None = None,
        ok: bool | None = None,
        include_polling: bool = False,
    ) -> int:
        """How many calls (getUpdates excluded unless asked or named)."""
        return sum(
            1
            for c in self.calls
            if (method is None or c.method == method)
            and (include_polling or method == "getUpdates" or c.method != "getUpdates")
            and (since is None or c.at >= since)
            and (chat_id is None or c.chat_id == chat_id)
            and (ok is None or c.ok == ok)
        )

    def errors(self, *, since: float | None = None) -> list[Call]:
        """Calls the fake answered with an error (4xx/5xx), oldest first."""
        return [
            c
            for c in self.calls
            if c.status not in (None, 200) and (since is None or c.at >= since)
        ]

    def early_retries(self) -> list[EarlyRetry]:
        """Calls repeating a 429'd call (same method, same chat) before retry_after passed."""
        found: dict[int, EarlyRetry] = {}
        for throttle in self.throttles:
            deadline = throttle.at + throttle.retry_after - self.faults.early_tolerance
            for call in self.calls:
                if (
                    call.seq > throttle.call_seq
                    and call.seq not in found
                    and call.method == throttle.method
                    and call.chat_id == throttle.chat_id
                    and call.at < deadline
                ):
                    found[call.seq] = EarlyRetry(throttle, call)
        return sorted(found.values(), key=lambda e: e.call.seq)

    @property
    def asked_to_drop_pending(self) -> bool:
        """Whether the bot ever asked to drop pending updates (it must not, at start)."""
        return bool(self.drop_pending_requests)

    def sent_commands(
        self, scope: JsonDict | None = None, language_code: str = ""
    ) -> list[JsonDict]:
        """The command list set with setMyCommands for a scope (default scope if None)."""
        return list(self.commands.get(commands_key(scope, language_code), []))

    def pending_updates(self) -> list[JsonDict]:
        """Updates not yet confirmed (polling) or acknowledged (webhook)."""
        return [copy.deepcopy(q.update) for q in self._queue]

    def update_event_seq(self, update: JsonDict) -> int:
        return self._update_event_seq.get(int(update.get("update_id", 0)), 0)

    # ------------------------------------------------------------------ waiting

    def watch(self, process: Watched) -> None:
        """Fail waits at once (with its log) if this bot process dies unexpectedly."""
        self._watched.append(process)
        process.add_exit_hook(lambda _code: self.feed.notify())

    def raise_if_bot_died(self) -> None:
        for process in self._watched:
            why = process.unexpected_exit()
            if why is not None:
                raise BotDied(
                    f"{why}\n--- last log lines of {process.name} ---\n{process.log_tail()}"
                )

    async def wait_for_call(
        self,
        method: str,
        *,
        since: float | None = None,
        where: Callable[[Call], bool] | None = None,
        timeout: float = 10.0,
    ) -> Call:
        """Wait until the bot makes (starts) a call, e.g. its first getUpdates = it is ready."""

        def check() -> Call | None:
            self.raise_if_bot_died()
            for call in self.calls:
                if (
                    call.method == method
                    and (since is None or call.at >= since)
                    and (where is None or where(call))
                ):
                    return call
            return None

        try:
            return await self.feed.wait_for(check, timeout)
        except TimeoutError:
            raise self.timeout_error(f"no {method} call within {timeout} s") from None

    async def wait_quiet(
        self, quiet: float = 0.3, *, timeout: float = 10.0, ignore: Iterable[str] = ("getUpdates",)
    ) -> None:
        """Wait until the bot made no API call for `quiet` seconds.

        Only for negative assertions ("and nothing else was sent"): a positive
        expectation should wait for its own event instead.
        """
        ignored = set(ignore)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self.raise_if_bot_died()
            active = [c for c in self.calls if c.method not in ignored]
            last = max((c.finished_at or c.at for c in active), default=self.started_at)
            idle_for = time.monotonic() - last
            if idle_for >= quiet:
                return
            if loop.time() >= deadline:
                raise self.timeout_error(f"the bot did not go quiet for {quiet} s")
            await self.feed.wait_changed(min(quiet - idle_for, deadline - loop.time()))

    async def wait_all_confirmed(self, timeout: float = 10.0) -> None:
        """Wait until every queued update was confirmed (polling) or acknowledged (webhook)."""

        def check() -> bool | None:
            self.raise_if_bot_died()
            return True if not self._queue else None

        try:
            await self.feed.wait_for(check, timeout)
        except TimeoutError:
            raise self.timeout_error(
                f"{len(self._queue)} update(s) still unconfirmed after {timeout} s"
            ) from None

    def timeout_error(self, what: str, chat_id: int | None = None) -> AssertionError:
        return WaitTimeout(f"{what}\n{self.describe(chat_id)}")

    def describe(self, chat_id: int | None = None, *, last_calls: int = 25) -> str:
        """Everything useful when a test times out: the chat, the calls, the errors, the log."""
        parts: list[str] = []
        if chat_id is not None and chat_id in self.chats:
            parts.append("--- what the phone shows ---\n" + str(self.screen(chat_id)))
        calls = [c for c in self.calls if c.method != "getUpdates"][-last_calls:]
        polls = self.count_calls("getUpdates")
        parts.append(
            f"--- last {len(calls)} API calls (+{polls} getUpdates) ---\n"
            + ("\n".join(c.short(self.started_at) for c in calls) or "(none)")
        )
        errors = self.errors()
        if errors:
            parts.append(
                "--- errors the fake answered ---\n"
                + "\n".join(c.short(self.started_at) for c in errors[-10:])
            )
        if self.unknown_calls:
            names = sorted({c.method for c in self.unknown_calls})
            parts.append(
                "--- methods the fake does not implement (answered True) ---\n" + ", ".join(names)
            )
        if self.dropped_updates:
            parts.append(
                f"--- {len(self.dropped_updates)} update(s) never delivered ---\n"
                + "\n".join(f"{u['update_id']}: {why}" for u, why in self.dropped_updates[-5:])
            )
        if self._queue:
            parts.append(f"--- {len(self._queue)} update(s) waiting for the bot ---")
        if self.internal_errors:
            parts.append(
                "--- requests the fake could not handle (answered 400) ---\n"
                + "\n".join(f"{c.method}: {why}" for c, why in self.internal_errors[-5:])
            )
        for process in self._watched:
            parts.append(f"--- last log lines of {process.name} ---\n{process.log_tail()}")
        return "\n".join(parts)

    # ------------------------------------------------------------------ HTTP edge

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        name = KNOWN_METHODS.get(request.match_info["method"].lower())
        if token != self.bot_token:
            return _json_error(ApiError(401, "Unauthorized"))
        if name is None:
            return _json_error(ApiError(404, "Not Found"))
        try:
            params = await _read_params(request)
        except ApiError as exc:
            return _json_error(exc)
        status, body = await self.dispatch(name, params)
        if isinstance(body, str):
            return web.Response(status=status, text=body, content_type="text/html")
        return web.json_response(body, status=status)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        stored = next((f for f in self.files.values() if f.file_path == path), None)
        if request.match_info["token"] != self.bot_token or stored is None:
            return _json_error(ApiError(404, "Not Found"))
        self.downloads.append((path, time.monotonic()))
        return web.Response(body=stored.data, content_type="application/octet-stream")

    async def dispatch(self, method: str, params: Params, *, via: str = "http") -> tuple[int, Any]:
        """Run one Bot API call; returns (HTTP status, JSON body or an HTML page)."""
        call = Call(
            seq=next(self._call_seq),
            method=method,
            params=params.recorded(),
            at=time.monotonic(),
            chat_id=self._call_chat(method, params),
            via=via,
            files=dict(params.uploads),
        )
        if self.keep_history:
            self.calls.append(call)
        self.feed.notify()
        try:
            try:
                result = await self._execute(call, params)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                # Malformed parameters the fake did not anticipate: Telegram would answer
                # 400 too. Kept in internal_errors so a gap in the fake gets noticed.
                self.internal_errors.append((call, repr(exc)))
                raise bad_request(f"invalid request ({type(exc).__name__}: {exc})") from exc
        except ApiError as exc:
            call.status, call.error = exc.code, exc.description
            call.finished_at = time.monotonic()
            self._call_finished(call)
            if exc.html_body:
                return exc.code, _nginx_page(exc.code)
            return exc.code, exc.body()
        call.status, call.result = 200, result
        call.finished_at = time.monotonic()
        self._call_finished(call)
        return 200, {"ok": True, "result": result}

    def _call_finished(self, call: Call) -> None:
        for listener in self.call_listeners:
            listener(call)
        self.feed.notify()

    async def _execute(self, call: Call, params: Params) -> Any:
        rule: FaultRule | None = self.faults.rule_for(call.method)
        if rule is not None and rule.delay > 0:
            await asyncio.sleep(rule.delay)  # injected latency, not a wait for state
        self._check_retry_window(call)
        if rule is not None:
            if self.faults.roll(rule.p_429):
                raise self._throttle(call, rule.retry_after, "random")
            if self.faults.roll(rule.p_5xx):
                raise server_error(rule.status_5xx, html=rule.html_5xx)
        windows = self._check_rate_limits(call)
        handler = HANDLERS.get(call.method)
        if handler is None:
            # A real method the fake does not model: answer like success so the bot
            # goes on, and list it so the test author notices.
            self.unknown_calls.append(call)
            result: Any = True
        else:
            result = await handler(self, params, call)
        for window in windows:
            window.times.append(call.at)
        if rule is not None and self.faults.roll(rule.p_lost_response):
            raise server_error(rule.status_5xx, html=rule.html_5xx)
        return result

    def _call_chat(self, method: str, params: Params) -> int | str | None:
        raw = params.values.get("chat_id")
        if raw is not None and raw != "":
            try:
                return int(raw)
            except (TypeError, ValueError):
                return str(raw)
        if method == "answerCallbackQuery":
            query = self.callback_queries.get(str(params.values.get("callback_query_id")))
            return query.chat_id if query else None
        return None

    def _throttle(self, call: Call, retry_after: int, reason: Any) -> ApiError:
        throttle = Throttle(call.seq, call.method, call.chat_id, call.at, retry_after, reason)
        self.throttles.append(throttle)
        if reason != "window":
            key = (call.method, call.chat_id)
            self._retry_windows[key] = max(self._retry_windows.get(key, 0.0), call.at + retry_after)
        return ApiError(
            429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
        )

    def _check_retry_window(self, call: Call) -> None:
        if not self.faults.enforce_retry_after:
            return
        until = self._retry_windows.get((call.method, call.chat_id), 0.0)
        if until > call.at:
            raise self._throttle(call, max(1, math.ceil(until - call.at)), "window")

    def _check_rate_limits(self, call: Call) -> list[SlidingWindow]:
        faults = self.faults
        if call.method not in faults.limited_methods or not isinstance(call.chat_id, int):
            return []
        pairs: list[tuple[SlidingWindow, RateLimit]] = []
        per_chat = faults.group_limit if call.chat_id < 0 else faults.private_limit
        if per_chat is not None:
            pairs.append((self._chat_windows[call.chat_id], per_chat))
        if faults.global_limit is not None:
            pairs.append((self._global_window, faults.global_limit))
        wait = max((w.retry_after(limit, call.at) for w, limit in pairs), default=0.0)
        if wait > 0:
            raise self._throttle(call, max(1, math.ceil(wait)), "rate_limit")
        return [w for w, _ in pairs]

    # ------------------------------------------------------------------ updates

    def _next_update_id(self) -> int:
        return next(self._update_ids)

    def _effective_allowed(self) -> frozenset[str]:
        if not self._allowed_updates:
            return DEFAULT_UPDATE_TYPES
        return frozenset(self._allowed_updates)

    def enqueue(self, update: JsonDict) -> bool:
        """Queue an update for the bot, as Telegram would (honouring allowed_updates)."""
        queued = QueuedUpdate(
            update=update, created_at=time.monotonic(), redeliver=self.duplicate_updates
        )
        # Telegram applies allowed_updates when an update is created, not when delivered.
        if queued.kind not in self._effective_allowed():
            self.dropped_updates.append(
                (update, f"{queued.kind} not in allowed_updates={self._allowed_updates}")
            )
            self.feed.notify()
            return False
        self._queue.append(queued)
        self.feed.notify()
        return True

    def _confirm(self, offset: int) -> None:
        if offset == 0:
            return
        if offset < 0:
            # "offset=-1 retrieves the last update; all previous ones are forgotten"
            self._queue = self._queue[offset:]
            return
        kept: list[QueuedUpdate] = []
        for queued in self._queue:
            if queued.update_id >= offset or queued.replay:
                kept.append(queued)
            elif queued.redeliver and queued.deliveries:
                queued.redeliver = False
                queued.replay = True
                kept.append(queued)
        self._queue = kept

    def _record_event(
        self,
        chat_id: int,
        kind: Any,
        stored: StoredMessage | None = None,
        *,
        query_id: str | None = None,
        from_bot: bool = True,
    ) -> ChatEvent:
        event = ChatEvent(
            seq=next(self._event_seq),
            at=time.monotonic(),
            chat_id=chat_id,
            kind=kind,
            message_id=stored.message_id if stored else None,
            snapshot=copy.deepcopy(stored.data) if stored else None,
            from_bot=from_bot,
            callback_query_id=query_id,
        )
        if self.keep_history:
            self.events.append(event)
        for listener in self.event_listeners:
            listener(event)
        self.feed.notify()
        return event

    def _user_update(
        self, chat: ChatState, kind: str, payload: JsonDict, event: ChatEvent
    ) -> JsonDict:
        update_id = self._next_update_id()
        update: JsonDict = {"update_id": update_id, kind: payload}
        self._update_event_seq[update_id] = event.seq
        hidden = self._hidden_from_bot(chat, kind, payload)
        if hidden is None:
            self.enqueue(update)
        else:
            self.dropped_updates.append((update, hidden))
            self.feed.notify()
        return copy.deepcopy(update)

    def _hidden_from_bot(self, chat: ChatState, kind: str, payload: JsonDict) -> str | None:
        """Why the bot would not get this update, or None if it does."""
        if kind == "my_chat_member":
            return None
        if chat.type == "private":
            return None
        if chat.bot_status in ("left", "kicked"):
            return f"the bot is not in chat {chat.id}"
        if kind in ("message", "edited_message") and not self._bot_sees(chat, payload):
            return "not visible to the bot in privacy mode (not a command or a reply to it)"
        return None

    # ------------------------------------------------------------------ user side
    # Called by phone.Phone / phone.Group; tests normally use those.

    def user_message(
        self,
        chat_id: int,
        sender: JsonDict,
        content: JsonDict,
        *,
        sender_chat: JsonDict | None = None,
        reply_to: int | None = None,
    ) -> JsonDict:
        """A message a person posts; returns the Update (delivered if the bot sees it)."""
        chat = self.chat(chat_id)
        if chat.migrated_to is not None:
            raise HarnessError(
                f"chat {chat_id} was upgraded to supergroup {chat.migrated_to}; post there"
            )
        message: JsonDict = {
            "message_id": chat.next_message_id(),
            "from": sender,
            "chat": chat.as_json(),
            "date": unix_now(),
        }
        if sender_chat is not None:
            message["sender_chat"] = sender_chat
        if reply_to is not None:
            target = chat.messages.get(reply_to)
            if target is None or target.deleted:
                raise HarnessError(f"message {reply_to} is not in chat {chat_id}")
            message["reply_to_message"] = _without_reply(target.data)
        message.update(content)
        stored = StoredMessage(data=message, from_bot=False)
        chat.messages[stored.message_id] = stored
        if chat.type == "private":
            chat.started = True
        event = self._record_event(chat.id, "user", stored, from_bot=False)
        return self._user_update(chat, "message", message, event)

    def user_edit(self, chat_id: int, message_id: int, new_text: str) -> JsonDict:
        chat = self.chat(chat_id)
        stored = chat.messages.get(message_id)
        if stored is None or stored.deleted or stored.from_bot:
            raise HarnessError(f"the user has no message {message_id} in chat {chat_id} to edit")
        key = "text" if "text" in stored.data else "caption"
        new = copy.deepcopy(stored.data)
        new[key] = new_text
        new.pop("entities" if key == "text" else "caption_entities", None)
        new.update(command_entities(new_text, key))
        new["edit_date"] = unix_now()
        stored.versions.append(stored.data)
        stored.data = new
        event = self._record_event(chat.id, "user", stored, from_bot=False)
        return self._user_update(chat, "edited_message", new, event)

    def user_callback(
        self, chat_id: int, user: JsonDict, stored: StoredMessage, data: str
    ) -> JsonDict:
        """A press on an inline button with callback_data: a callback_query update."""
        chat = self.chat(chat_id)
        query_id = str(4_000_000_000_000_000_000 + next(self._query_ids) * 7_919)
        self.callback_queries[query_id] = CallbackQueryState(
            id=query_id,
            chat_id=chat_id,
            message_id=stored.message_id,
            from_user_id=int(user["id"]),
            data=data,
            created_at=time.monotonic(),
        )
        payload = {
            "id": query_id,
            "from": user,
            "message": copy.deepcopy(stored.data),
            "chat_instance": chat.chat_instance,
            "data": data,
        }
        event = self._record_event(chat.id, "user", stored, query_id=query_id, from_bot=False)
        return self._user_update(chat, "callback_query", payload, event)

    def member_update(
        self,
        chat_id: int,
        actor: JsonDict,
        member: JsonDict,
        old_status: str,
        new_status: str,
        *,
        mine: bool,
    ) -> JsonDict:
        """A my_chat_member (mine=True, about the bot) or chat_member update."""
        chat = self.chat(chat_id)
        payload = {
            "chat": chat.as_json(),
            "from": actor,
            "date": unix_now(),
            "old_chat_member": self._member_json(chat, int(member["id"]), status=old_status),
            "new_chat_member": self._member_json(chat, int(member["id"]), status=new_status),
        }
        event = self._record_event(chat.id, "user", from_bot=False)
        return self._user_update(chat, "my_chat_member" if mine else "chat_member", payload, event)

    def store_file(
        self,
        kind: str,
        data: bytes,
        *,
        filename: str | None = None,
        mime_type: str | None = None,
        from_bot: bool = False,
    ) -> StoredFile:
        number = next(self._file_numbers)
        digest = hashlib.sha256(data).hexdigest()
        extension = ""
        if filename and "." in filename:
            extension = filename.rsplit(".", 1)[1]
        elif kind == "photo":
            extension = "jpg"
        elif kind == "voice":
            extension = "oga"
        folder = {"photo": "photos", "document": "documents", "voice": "voice"}.get(
            kind, kind + "s"
        )
        stored = StoredFile(
            file_id=f"{_FILE_ID_PREFIX.get(kind, 'BQACAgIAAxkBAAI')}{number:06d}{digest[:24]}",
            file_unique_id=f"AQAD{digest[:12]}",
            data=data,
            file_path=f"{folder}/file_{number}" + (f".{extension}" if extension else ""),
            filename=filename,
            mime_type=mime_type or (mimetypes.guess_type(filename)[0] if filename else None),
            from_bot=from_bot,
        )
        self.files[stored.file_id] = stored
        return stored

    def migrate_group(
        self, chat_id: int, new_chat_id: int, by: JsonDict
    ) -> tuple[JsonDict, JsonDict]:
        """Upgrade a basic group to a supergroup, with Telegram's two service messages."""
        old = self.chat(chat_id)
        if old.type != "group":
            raise HarnessError(f"chat {chat_id} is a {old.type}, only basic groups migrate")
        if new_chat_id in self.chats:
            raise HarnessError(f"chat {new_chat_id} already exists")
        new = ChatState(
            id=new_chat_id,
            type="supergroup",
            title=old.title,
            owner=old.owner,
            admins=set(old.admins),
            members=set(old.members),
            bot_status=old.bot_status,
            migrated_from=chat_id,
            chat_instance=str(-(10**18) - abs(new_chat_id)),
        )
        self.chats[new_chat_id] = new
        first = self.user_message(chat_id, by, {"migrate_to_chat_id": new_chat_id})
        old.migrated_to = new_chat_id
        second = self.user_message(
            new_chat_id,
            GROUP_ANONYMOUS_BOT,
            {"migrate_from_chat_id": chat_id},
            sender_chat=new.as_json(),
        )
        return first, second

    def _bot_sees(self, chat: ChatState, message: JsonDict) -> bool:
        """Privacy mode: in groups the bot gets commands, replies to it, service messages."""
        if chat.type == "private" or not self.privacy_mode or chat.bot_status == "administrator":
            return True
        if "text" not in message and "caption" not in message:
            return any(key in message for key in _SERVICE_MESSAGE_KEYS)
        reply = message.get("reply_to_message") or {}
        if (reply.get("from") or {}).get("id") == self.bot_id:
            return True
        text = message.get("text") or message.get("caption") or ""
        for entity in message.get("entities") or message.get("caption_entities") or []:
            if entity.get("type") != "bot_command":
                continue
            command = utf16_slice(text, entity["offset"], entity["length"])
            if "@" not in command or command.split("@", 1)[1].lower() == self.bot_username.lower():
                return True
        return False

    # ------------------------------------------------------------------ helpers for methods

    def _target_chat(self, params: Params, *, write: bool) -> ChatState:
        raw = params.values.get("chat_id")
        if raw is None or raw == "":
            raise bad_request("chat_id is empty")
        try:
            chat = self.chats.get(int(raw))
        except (TypeError, ValueError):
            chat = None
        if chat is None:
            raise bad_request("chat not found")
        if chat.migrated_to is not None:
            raise bad_request(
                "group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": chat.migrated_to},
            )
        if write:
            if chat.type == "private":
                if chat.id in self.faults.blocked_users:
                    raise forbidden("bot was blocked by the user")
                if not chat.started:
                    raise forbidden("bot can't initiate conversation with a user")
            elif chat.bot_status == "kicked":
                raise forbidden(f"bot was kicked from the {chat.type} chat")
            elif chat.bot_status == "left":
                raise forbidden(f"bot is not a member of the {chat.type} chat")
        return chat

    def _formatted(
        self, params: Params, field: str, *, caption: bool
    ) -> tuple[str, list[JsonDict]]:
        raw = params.str_(field)
        entities_field = "caption_entities" if caption else "entities"
        mode = (params.str_("parse_mode") or "").strip()
        if raw is None or raw == "":
            if caption:
                return "", []
            raise bad_request("message text is empty")
        if mode.lower() == "html":
            try:
                text, entities = parse_html(raw, strict_ampersand=self.strict_html)
            except EntityParseError as exc:
                raise bad_request(f"can't parse entities: {exc}") from None
        elif mode == "":
            text, entities = trim_plain(raw, params.json_(entities_field))
        elif mode.lower() in ("markdown", "markdownv2"):
            # Not modelled: the text is kept as sent (the project uses HTML).
            text, entities = trim_plain(raw, None)
        else:
            raise bad_request("unsupported parse_mode")
        if not text and not caption:
            raise bad_request("message text is empty")
        if len(text) > (CAPTION_LIMIT if caption else TEXT_LIMIT):
            raise bad_request("message caption is too long" if caption else "message is too long")
        return text, entities

    def _reply_markup(self, params: Params, *, inline_only: bool = False) -> JsonDict | None:
        if not params.has("reply_markup"):
            return None
        markup = params.json_("reply_markup")
        if not isinstance(markup, dict):
            raise bad_request("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" in markup:
            rows = markup["inline_keyboard"]
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise bad_request(
                    "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
                )
            for row in rows:
                for button in row:
                    _check_inline_button(button)
            return markup
        if inline_only:
            raise bad_request("inline keyboard expected")
        if "keyboard" in markup or "remove_keyboard" in markup or "force_reply" in markup:
            return markup
        raise bad_request("can't parse reply keyboard markup JSON object")

    def _reply_target(self, chat: ChatState, params: Params) -> JsonDict | None:
        reply = params.json_("reply_parameters") if params.has("reply_parameters") else None
        message_id = params.int_("reply_to_message_id")
        allow_missing = params.bool_("allow_sending_without_reply")
        if isinstance(reply, dict):
            message_id = int(reply.get("message_id", 0))
            allow_missing = bool(reply.get("allow_sending_without_reply", allow_missing))
        if not message_id:
            return None
        target = chat.messages.get(message_id)
        if target is None or target.deleted:
            if allow_missing:
                return None
            raise bad_request("message to be replied not found")
        return _without_reply(target.data)

    def _bot_post(
        self, params: Params, content: JsonDict, *, source: str | None = None
    ) -> JsonDict:
        chat = self._target_chat(params, write=True)
        markup = self._reply_markup(params)
        message: JsonDict = {
            "message_id": chat.next_message_id(),
            "from": self.bot_user,
            "chat": chat.as_json(),
            "date": unix_now(),
        }
        reply = self._reply_target(chat, params)
        if reply is not None:
            message["reply_to_message"] = reply
        message.update(content)
        stored = StoredMessage(data=message, from_bot=True, source=source)
        if markup is not None:
            if "inline_keyboard" in markup:
                message["reply_markup"] = markup  # only inline keyboards belong to a message
            elif "keyboard" in markup:
                stored.reply_keyboard = markup
                chat.reply_keyboard = markup
            elif markup.get("remove_keyboard"):
                chat.reply_keyboard = None
        chat.messages[stored.message_id] = stored
        chat.bot_has_posted = True
        self._record_event(chat.id, "new", stored)
        return copy.deepcopy(message)

    def _message_to_edit(self, params: Params) -> tuple[ChatState, StoredMessage]:
        if params.has("inline_message_id"):
            raise bad_request("message to edit not found")  # inline mode is not modelled
        chat = self._target_chat(params, write=True)
        message_id = params.int_("message_id")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        stored = chat.messages.get(message_id)
        if stored is None or stored.deleted:
            raise bad_request("message to edit not found")
        if not stored.from_bot:
            raise bad_request("message can't be edited")
        return chat, stored

    def _apply_edit(self, chat: ChatState, stored: StoredMessage, new: JsonDict) -> JsonDict:
        keys = ("text", "entities", "caption", "caption_entities", "reply_markup")
        if all(stored.data.get(k) == new.get(k) for k in keys):
            raise bad_request(NOT_MODIFIED)
        new["edit_date"] = unix_now()
        stored.versions.append(stored.data)
        stored.data = new
        self._record_event(chat.id, "edit", stored)
        return copy.deepcopy(new)

    def _upload(self, params: Params, field: str, kind: str) -> StoredFile:
        value = params.file(field)
        if value is None:
            raise bad_request(f"there is no {field} in the request")
        if isinstance(value, Upload):
            if len(value.data) > UPLOAD_LIMIT:
                raise ApiError(413, "Request Entity Too Large")
            return self.store_file(
                kind,
                value.data,
                filename=value.filename,
                mime_type=value.content_type
                if value.content_type not in (None, "application/octet-stream")
                else None,
                from_bot=True,
            )
        if value.startswith(("http://", "https://")):
            # Telegram would fetch it from the internet, which tests never reach.
            raise bad_request("failed to get HTTP URL content")
        stored = self.files.get(value)
        if stored is None:
            raise bad_request("wrong file identifier/HTTP URL specified")
        return stored

    def _media_object(
        self, kind: str, stored: StoredFile, params: Params
    ) -> JsonDict | list[JsonDict]:
        base: JsonDict = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
        }
        if kind == "photo":
            return [{**base, "width": 1280, "height": 960}]
        if kind == "document":
            obj = {**base, "file_name": stored.filename or "document"}
            if stored.mime_type:
                obj["mime_type"] = stored.mime_type
            return obj
        if kind == "sticker":
            return {
                **base,
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
            }
        if kind in ("voice", "audio", "video", "animation", "video_note"):
            obj = {**base, "duration": params.int_("duration", 1) or 1}
            if kind in ("video", "animation"):
                obj.update(width=640, height=480)
            if kind == "video_note":
                obj["length"] = 240
            return obj
        return base

    def _member_json(self, chat: ChatState, user_id: int, *, status: str | None = None) -> JsonDict:
        user = self.bot_user if user_id == self.bot_id else self.users.get(user_id)
        if user is None:
            raise bad_request("user not found")
        if status is None:
            if user_id == self.bot_id:
                status = chat.bot_status if chat.type != "private" else "member"
            elif chat.type == "private":
                status = "member" if user_id == chat.id else "left"
            elif user_id == chat.owner:
                status = "creator"
            elif user_id in chat.admins:
                status = "administrator"
            elif user_id in chat.members:
                status = "member"
            else:
                status = "left"
        if status == "creator":
            return {"status": "creator", "user": user, "is_anonymous": False}
        if status == "administrator":
            return {
                "status": "administrator",
                "user": user,
                **_ADMIN_RIGHTS,
                "can_be_edited": user_id == self.bot_id,
            }
        if status == "kicked":
            return {"status": "kicked", "user": user, "until_date": 0}
        return {"status": status, "user": user}

    def _chat_full_info(self, chat: ChatState) -> JsonDict:
        info = {
            **chat.as_json(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }
        info.pop("all_members_are_administrators", None)
        live = [m for m in chat.pinned if not chat.messages[m].deleted]
        if live:
            info["pinned_message"] = copy.deepcopy(chat.messages[live[-1]].data)
        return info

    # ------------------------------------------------------------------ webhook delivery

    async def _stop_webhook_task(self) -> None:
        task, self._webhook_task = self._webhook_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _webhook_loop(self, hook: WebhookState) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        connections = self.webhook_connections or hook.max_connections
        posting: set[int] = set()  # update ids in flight (or waiting to be retried)
        await asyncio.gather(
            *(self._webhook_sender(hook, posting) for _ in range(max(1, connections)))
        )

    def _next_to_post(self, posting: set[int]) -> QueuedUpdate | None:
        """The oldest queued update not in flight whose chat has nothing earlier queued."""
        earlier: set[int] = set()
        for item in self._queue:
            key = _sender_key(item)
            if key not in earlier and item.update_id not in posting:
                return item
            earlier.add(key)
        return None

    async def _webhook_sender(self, hook: WebhookState, posting: set[int]) -> None:
        """One connection: posts the next deliverable update, retries it on failure."""
        delay = self.webhook_retry_delay

        def next_item() -> QueuedUpdate | None:
            if self._closing or self.webhook is not hook:
                return _STOP
            return self._next_to_post(posting)

        while True:
            item = await self.feed.wait_for(next_item, None)
            if item is _STOP:
                return
            posting.add(item.update_id)
            try:
                status, error = await self._post_update(hook, item)
                self.webhook_deliveries.append(
                    WebhookDelivery(item.update_id, time.monotonic(), status, error)
                )
                if status is not None and 200 <= status < 300:
                    item.deliveries += 1
                    if item.redeliver:
                        item.redeliver = False  # duplicate mode: post it once more
                    elif item in self._queue:
                        self._queue.remove(item)
                    delay = self.webhook_retry_delay
                    continue
                hook.last_error_date = unix_now()
                hook.last_error_message = error
                self.feed.notify()
                await asyncio.sleep(delay)  # Telegram's retry backoff, shortened for tests
                delay = min(delay * 2, 2.0)
            finally:
                posting.discard(item.update_id)
                self.feed.notify()

    async def _post_update(
        self, hook: WebhookState, item: QueuedUpdate
    ) -> tuple[int | None, str | None]:
        assert self._http is not None
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        reply: tuple[str, Params] | None = None
        try:
            async with self._http.post(
                hook.url,
                data=json.dumps(item.update, ensure_ascii=False).encode(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.webhook_timeout),
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    reply = await _webhook_reply(response)
                else:
                    return status, f"Wrong response from the webhook: {status} {response.reason}"
        except TimeoutError:
            return None, "Read timeout expired"
        except aiohttp.ClientConnectorError:
            return None, "Connection refused"
        except aiohttp.ClientError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        if reply is not None:
            # A bot may answer the webhook request with a method call; Telegram runs it.
            await self.dispatch(reply[0], reply[1], via="webhook-reply")
        return status, None


# ---------------------------------------------------------------------- module helpers

# Rights an admin (or the bot as admin) gets; aiogram requires every one of these fields.
_ADMIN_RIGHTS: JsonDict = {
    "is_anonymous": False,
    "can_manage_chat": True,
    "can_delete_messages": True,
    "can_manage_video_chats": True,
    "can_restrict_members": True,
    "can_promote_members": False,
    "can_change_info": True,
    "can_invite_users": True,
    "can_post_stories": False,
    "can_edit_stories": False,
    "can_delete_stories": False,
    "can_send_welcome_messages": False,
    "can_pin_messages": True,
    "can_manage_topics": False,
}
_SERVICE_MESSAGE_KEYS = (
    "new_chat_members",
    "left_chat_member",
    "new_chat_title",
    "group_chat_created",
    "supergroup_chat_created",
    "migrate_to_chat_id",
    "migrate_from_chat_id",
    "pinned_message",
)


# Tells the webhook loop to end (a sentinel of the queue's own type keeps typing simple).
_STOP = QueuedUpdate(update={"update_id": 0}, created_at=0.0)


def _sender_key(item: QueuedUpdate) -> int:
    """Whose updates keep their order in parallel webhook delivery: the sender's, or the chat's."""
    event = item.update.get(item.kind)
    if not isinstance(event, dict):
        return item.update_id
    sender = event.get("from") or {}
    chat = event.get("chat") or (event.get("message") or {}).get("chat") or {}
    return int(sender.get("id") or chat.get("id") or item.update_id)


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad_request("can't parse inline keyboard button: Text must be a String")
    actions = [key for key in _BUTTON_ACTIONS if key in button]
    if not actions:
        raise bad_request("text buttons are unallowed in the inline keyboard")
    data = button.get("callback_data")
    if data is not None and not 1 <= len(str(data).encode("utf-8")) <= 64:
        raise bad_request("BUTTON_DATA_INVALID")
    url = button.get("url")
    if url is not None and not str(url).startswith(("http://", "https://", "tg://")):
        raise bad_request("BUTTON_URL_INVALID")


def _without_reply(message: JsonDict) -> JsonDict:
    data = copy.deepcopy(message)
    data.pop("reply_to_message", None)
    return data


async def _read_params(request: web.Request) -> Params:
    values: JsonDict = dict(request.query)
    uploads: dict[str, Upload] = {}
    if request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise bad_request("can't parse JSON request") from None
            if not isinstance(body, dict):
                raise bad_request("can't parse JSON request")
            values.update(body)
        else:
            # request.post() reads both urlencoded and multipart/form-data bodies.
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    uploads[key] = Upload(
                        key, value.filename, value.file.read(), value.content_type
                    )
                else:
                    values[key] = value
    return Params(values, uploads)


async def _webhook_reply(response: aiohttp.ClientResponse) -> tuple[str, Params] | None:
    """The method a bot returned in its webhook answer (aiogram: multipart with 'method')."""
    if response.content_type.startswith("multipart/"):
        values: JsonDict = {}
        uploads: dict[str, Upload] = {}
        reader = aiohttp.MultipartReader.from_response(response)
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
                continue
            if part.filename is not None:
                uploads[part.name] = Upload(part.name, part.filename, bytes(await part.read()))
            else:
                values[part.name] = await part.text()
    elif response.content_type == "application/json":
        try:
            body = await response.json()
        except ValueError:
            return None
        values, uploads = (body if isinstance(body, dict) else {}), {}
    else:
        return None
    name = KNOWN_METHODS.get(str(values.pop("method", "")).lower())
    if name is None:
        return None
    return name, Params(values, uploads)


def _json_error(error: ApiError) -> web.Response:
    return web.json_response(error.body(), status=error.code)


def _nginx_page(status: int) -> str:
    from http import HTTPStatus

    phrase = HTTPStatus(status).phrase
    return (
        f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
