"""What the fake Bot API server remembers: chats, messages, files, calls, updates.

Plain data classes; the behaviour lives in fake_telegram.py (the server side) and
phone.py (the user side). Message and update objects are kept as the JSON dicts
Telegram would send, so what aiogram parses is exactly what tests read.
"""

# Every wait takes its own timeout: a test states its time budget where it waits.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal, TypeVar

JsonDict = dict[str, Any]
T = TypeVar("T")

# Telegram's service account that posts on behalf of anonymous group admins.
GROUP_ANONYMOUS_BOT: JsonDict = {
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}

# Update types Telegram sends when allowed_updates was never given or is [].
ALL_UPDATE_TYPES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
)
DEFAULT_UPDATE_TYPES = frozenset(ALL_UPDATE_TYPES) - {
    "chat_member",
    "message_reaction",
    "message_reaction_count",
}


class HarnessError(AssertionError):
    """A test asked the scripted user for something a real phone could not do.

    An AssertionError so pytest shows the message as a test failure, not a crash.
    """


class ApiError(Exception):
    """An error answer of the Bot API: {"ok": false, "error_code", "description", ...}."""

    def __init__(
        self,
        code: int,
        description: str,
        parameters: JsonDict | None = None,
        *,
        html_body: bool = False,
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters
        self.html_body = html_body  # answer with an nginx-style HTML page instead of JSON

    def body(self) -> JsonDict:
        body: JsonDict = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"


def bad_request(message: str, parameters: JsonDict | None = None) -> ApiError:
    return ApiError(400, f"Bad Request: {message}", parameters)


def forbidden(message: str) -> ApiError:
    return ApiError(403, f"Forbidden: {message}")


def server_error(status: int, *, html: bool = False) -> ApiError:
    return ApiError(status, HTTPStatus(status).phrase, html_body=html)


def commands_key(scope: Any, language_code: str) -> tuple[str, str]:
    """Where setMyCommands stores a list: per scope and language, like Telegram."""
    scope_dict = scope if isinstance(scope, dict) and scope else {"type": "default"}
    return json.dumps(scope_dict, sort_keys=True), language_code


@dataclass
class Upload:
    """A file part of a multipart request."""

    name: str
    filename: str
    data: bytes
    content_type: str | None = None


# Fields whose values are text even when they look like JSON ("123", "true").
STRING_FIELDS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "inline_message_id",
        "url",
        "secret_token",
        "ip_address",
        "file_id",
        "action",
        "language_code",
        "title",
        "description",
        "short_description",
        "name",
        "emoji",
        "query",
        "custom_title",
        "business_connection_id",
        "message_effect_id",
        "photo",
        "document",
        "audio",
        "video",
        "voice",
        "animation",
        "video_note",
        "sticker",
        "thumbnail",
        "certificate",
        "phone_number",
        "first_name",
        "last_name",
        "vcard",
        "address",
        "foursquare_id",
        "question",
    }
)


def coerce_field(name: str, value: Any) -> Any:
    """Form fields arrive as strings; aiogram JSON-encodes everything that is not a str."""
    if not isinstance(value, str) or name in STRING_FIELDS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # e.g. chat_id="@channel"


class Params:
    """A request's parameters with Telegram-style coercion and error messages."""

    def __init__(self, values: JsonDict, uploads: dict[str, Upload] | None = None) -> None:
        self.values = {k: coerce_field(k, v) for k, v in values.items()}
        self.uploads = uploads or {}

    def has(self, name: str) -> bool:
        return self.values.get(name) not in (None, "")

    def get(self, name: str, default: Any = None) -> Any:
        value = self.values.get(name)
        return default if value is None else value

    def int_(self, name: str, default: int | None = None) -> int | None:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            raise bad_request(f'field "{name}" must be of type Integer')
        if isinstance(value, int):
            return value
        try:
            return int(str(value))
        except ValueError:
            raise bad_request(f'field "{name}" must be of type Integer') from None

    def str_(self, name: str, default: str | None = None) -> str | None:
        value = self.values.get(name)
        if value is None:
            return default
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    def bool_(self, name: str, default: bool = False) -> bool:
        value = self.values.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        return str(value).lower() in ("true", "1")

    def json_(self, name: str) -> Any:
        value = self.values.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise bad_request(f"can't parse {name} JSON object") from None
        return value

    def file(self, name: str) -> Upload | str | None:
        """An uploaded part (directly or via attach://), or a file_id/URL string."""
        if name in self.uploads:
            return self.uploads[name]
        value = self.values.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            key = value[len("attach://") :]
            if key not in self.uploads:
                raise bad_request("wrong file identifier/HTTP URL specified")
            return self.uploads[key]
        return value if isinstance(value, str) and value else None

    def recorded(self) -> JsonDict:
        """What tests see in Call.params: values, with uploads as '<file name, N bytes>'."""
        shown = dict(self.values)
        for key, upload in self.uploads.items():
            shown.setdefault(key, f"<file {upload.filename}, {len(upload.data)} bytes>")
        return shown


@dataclass
class Call:
    """One Bot API call as the fake received it.

    Iterating gives (method, params, at, chat_id), so `for method, params, at, chat_id in
    tg.calls` works; the other fields say how the fake answered.
    """

    seq: int
    method: str
    params: JsonDict
    at: float  # time.monotonic() when received
    chat_id: int | str | None
    via: str = "http"  # "webhook-reply" for a method returned in a webhook response
    files: dict[str, Upload] = field(default_factory=dict)
    status: int | None = None  # None while in flight (a long poll)
    error: str | None = None
    result: Any = None
    finished_at: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    def __iter__(self) -> Iterator[Any]:
        return iter((self.method, self.params, self.at, self.chat_id))

    def short(self, origin: float = 0.0) -> str:
        """One line for failure reports."""
        outcome = (
            "in flight"
            if self.status is None
            else ("ok" if self.ok else f"{self.status} {self.error}")
        )
        detail = ""
        for key in ("text", "caption", "callback_query_id", "message_id", "document", "url"):
            if key in self.params:
                value = str(self.params[key]).replace("\n", "⏎")
                detail += f" {key}={value[:60]!r}"
        chat = f" chat={self.chat_id}" if self.chat_id is not None else ""
        return f"+{self.at - origin:8.3f}s {self.method}{chat}{detail} -> {outcome}"


@dataclass(frozen=True)
class Throttle:
    """A 429 the fake answered: the bot must not repeat the call before at + retry_after."""

    call_seq: int
    method: str
    chat_id: int | str | None
    at: float
    retry_after: int
    reason: Literal["random", "rate_limit", "window"]


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    file_path: str
    filename: str | None = None
    mime_type: str | None = None
    from_bot: bool = False


@dataclass
class StoredMessage:
    """A message as it is now in a chat, plus what a phone needs beyond the Message JSON."""

    data: JsonDict
    from_bot: bool
    deleted: bool = False
    versions: list[JsonDict] = field(default_factory=list)  # earlier contents (edits)
    reply_keyboard: JsonDict | None = None  # a ReplyKeyboardMarkup that came with it
    source: str | None = None  # the text as the bot sent it (HTML before parsing)

    @property
    def message_id(self) -> int:
        return int(self.data["message_id"])


@dataclass
class ChatState:
    id: int
    type: Literal["private", "group", "supergroup"]
    title: str | None = None
    user: JsonDict | None = None  # the other side of a private chat
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    last_message_id: int = 0
    pinned: list[int] = field(default_factory=list)
    migrated_to: int | None = None
    migrated_from: int | None = None
    started: bool = False  # private: the user has written to the bot
    bot_status: str = "member"  # groups: member / administrator / left / kicked
    owner: int | None = None
    admins: set[int] = field(default_factory=set)
    members: set[int] = field(default_factory=set)
    reply_keyboard: JsonDict | None = None  # the reply keyboard the phone shows now
    bot_has_posted: bool = False
    chat_instance: str = ""

    def next_message_id(self) -> int:
        self.last_message_id += 1
        return self.last_message_id

    def as_json(self) -> JsonDict:
        if self.type == "private":
            assert self.user is not None
            chat: JsonDict = {"id": self.id, "type": "private"}
            for key in ("first_name", "last_name", "username"):
                if self.user.get(key):
                    chat[key] = self.user[key]
            return chat
        chat = {"id": self.id, "type": self.type, "title": self.title or ""}
        if self.type == "group":
            chat["all_members_are_administrators"] = False
        return chat

    def visible(self) -> list[StoredMessage]:
        return [m for m in self.messages.values() if not m.deleted]


@dataclass
class CallbackQueryState:
    id: str
    chat_id: int
    message_id: int
    from_user_id: int
    data: str
    created_at: float
    answered_at: float | None = None
    answer: JsonDict | None = None


@dataclass
class QueuedUpdate:
    update: JsonDict
    created_at: float
    deliveries: int = 0
    redeliver: bool = False  # duplicate mode: deliver once more after confirmation
    replay: bool = False  # this is that extra delivery: send even though it is below offset

    @property
    def update_id(self) -> int:
        return int(self.update["update_id"])

    @property
    def kind(self) -> str:
        return next(k for k in self.update if k != "update_id")


@dataclass
class WebhookState:
    url: str
    secret_token: str | None
    max_connections: int
    set_at: float
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass(frozen=True)
class WebhookDelivery:
    update_id: int
    at: float
    status: int | None  # None: no HTTP answer (connection refused, timeout)
    error: str | None


@dataclass(frozen=True)
class ChatEvent:
    """Something a phone would notice in a chat, in order (seq)."""

    seq: int
    at: float
    chat_id: int
    kind: Literal["user", "new", "edit", "delete", "answer"]
    message_id: int | None
    snapshot: JsonDict | None  # the message right after this event
    from_bot: bool
    callback_query_id: str | None = None


class ChangeFeed:
    """Wakes every waiter on any change; each waiter re-checks its own condition.

    This is what makes waiting in tests event-driven rather than sleep-polling: the
    fake notifies on every API call and every state change.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.version = 0

    def notify(self) -> None:
        self.version += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_changed(self, timeout: float) -> bool:
        """True if something changed within timeout seconds."""
        event = self._event
        try:
            async with asyncio.timeout(max(timeout, 0)):
                await event.wait()
        except TimeoutError:
            return False
        return True

    async def wait_for(self, check: Callable[[], T | None], timeout: float | None) -> T:
        """Return check()'s first non-None result; TimeoutError after timeout seconds."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            result = check()
            if result is not None:
                return result
            event = self._event
            if deadline is None:
                await event.wait()
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            try:
                async with asyncio.timeout(remaining):
                    await event.wait()
            except TimeoutError:
                pass  # one last check at the top of the loop


def unix_now() -> int:
    return int(time.time())
