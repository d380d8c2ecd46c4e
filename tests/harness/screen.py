"""The chat as a phone shows it: immutable snapshots that tests assert on.

Built from the fake server's state (state.py); no behaviour here except rendering,
so a failing test can print exactly what the user would have seen.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .state import ChatState, JsonDict, StoredFile, StoredMessage

# What a test can wait for: a substring of the text, a regex, or a predicate.
Match = str | re.Pattern[str] | Callable[["ScreenMessage"], bool]

_MEDIA_KINDS = (
    "photo",
    "document",
    "sticker",
    "voice",
    "video",
    "audio",
    "animation",
    "video_note",
    "contact",
    "location",
    "venue",
    "poll",
    "dice",
)
_SERVICE_KEYS = (
    "new_chat_members",
    "left_chat_member",
    "new_chat_title",
    "group_chat_created",
    "supergroup_chat_created",
    "migrate_to_chat_id",
    "migrate_from_chat_id",
    "pinned_message",
)


@dataclass(frozen=True)
class ReceivedFile:
    """A file in the chat (document or photo), with its bytes."""

    message_id: int
    file_id: str
    filename: str | None
    mime_type: str | None
    data: bytes
    caption: str
    from_bot: bool


@dataclass(frozen=True)
class ScreenMessage:
    """One message bubble: who sent it, its text (or caption), its inline buttons."""

    chat_id: int
    message_id: int
    from_bot: bool
    sender: str
    kind: str  # "text", "photo", "document", "sticker", "voice", ..., "service"
    text: str  # text, or caption of a media message, "" when none
    buttons: tuple[tuple[str, ...], ...]  # inline keyboard labels, row by row
    edited: bool
    deleted: bool
    raw: JsonDict = field(repr=False, compare=False)  # the Message object
    file: ReceivedFile | None = field(default=None, repr=False, compare=False)
    reply_keyboard: tuple[tuple[str, ...], ...] | None = None

    def button_data(self, label: str) -> str:
        """The callback data of the inline button with this label (for a replayed tap)."""
        for row in (self.raw.get("reply_markup") or {}).get("inline_keyboard", []):
            for button in row:
                if button["text"] == label:
                    return str(button["callback_data"])
        raise AssertionError(f"no button «{label}» on {self.text!r}")

    @classmethod
    def build(
        cls,
        data: JsonDict,
        *,
        from_bot: bool,
        files: Mapping[str, StoredFile],
        deleted: bool = False,
        reply_keyboard: JsonDict | None = None,
    ) -> ScreenMessage:
        kind = "text" if "text" in data else "other"
        for key in _MEDIA_KINDS:
            if key in data:
                kind = key
                break
        else:
            if any(key in data for key in _SERVICE_KEYS):
                kind = "service"
        sender_user = data.get("from") or {}
        sender = (
            "bot"
            if from_bot
            else (data.get("sender_chat") or {}).get("title") or sender_user.get("first_name", "?")
        )
        markup = data.get("reply_markup") or {}
        buttons = tuple(
            tuple(str(button.get("text", "")) for button in row)
            for row in markup.get("inline_keyboard", [])
        )
        return cls(
            chat_id=int(data["chat"]["id"]),
            message_id=int(data["message_id"]),
            from_bot=from_bot,
            sender=str(sender),
            kind=kind,
            text=str(data.get("text") or data.get("caption") or ""),
            buttons=buttons,
            edited="edit_date" in data,
            deleted=deleted,
            raw=copy.deepcopy(data),
            file=_file_of(data, files, from_bot),
            reply_keyboard=_labels(reply_keyboard),
        )

    @property
    def button_labels(self) -> list[str]:
        return [label for row in self.buttons for label in row]

    def has_button(self, label: str) -> bool:
        return label in self.button_labels

    def button(self, label: str) -> JsonDict | None:
        """The InlineKeyboardButton object with this label, if any."""
        for row in (self.raw.get("reply_markup") or {}).get("inline_keyboard", []):
            for button in row:
                if button.get("text") == label:
                    return dict(button)
        return None

    def matches(self, match: Match) -> bool:
        if isinstance(match, str):
            return match in self.text
        if isinstance(match, re.Pattern):
            return match.search(self.text) is not None
        return bool(match(self))

    def render(self) -> str:
        flags = "".join((" (edited)" if self.edited else "", " (deleted)" if self.deleted else ""))
        body = self.text if self.kind == "text" else f"[{self.kind}] {self.text}".rstrip()
        if self.file is not None and self.file.filename:
            body += f" <{self.file.filename}, {len(self.file.data)} bytes>"
        body = body.replace("\n", "\n" + " " * 8)  # continuation lines under the text
        lines = [f"#{self.message_id:<4} {self.sender}{flags}: {body}"]
        lines.extend("        " + " ".join(f"[{label}]" for label in row) for row in self.buttons)
        return "\n".join(lines)


@dataclass(frozen=True)
class Screen:
    """The whole chat as the phone shows it now (deleted messages are gone)."""

    chat_id: int
    title: str
    messages: tuple[ScreenMessage, ...]
    pinned: ScreenMessage | None
    reply_keyboard: tuple[tuple[str, ...], ...] | None  # the keyboard under the input field

    @classmethod
    def of(cls, chat: ChatState, files: Mapping[str, StoredFile]) -> Screen:
        messages = tuple(message_view(m, files) for m in chat.visible())
        pinned_id = next(
            (mid for mid in reversed(chat.pinned) if not chat.messages[mid].deleted), None
        )
        pinned = next((m for m in messages if m.message_id == pinned_id), None)
        if chat.type == "private":
            assert chat.user is not None
            title = chat.user.get("first_name", "")
        else:
            title = chat.title or ""
        return cls(chat.id, title, messages, pinned, _labels(chat.reply_keyboard))

    def texts(self) -> list[str]:
        return [m.text for m in self.messages]

    def bot_messages(self) -> list[ScreenMessage]:
        return [m for m in self.messages if m.from_bot]

    def last_bot_message(self) -> ScreenMessage | None:
        bot = self.bot_messages()
        return bot[-1] if bot else None

    def find(self, match: Match) -> ScreenMessage | None:
        """The latest message matching (substring, regex or predicate)."""
        return next((m for m in reversed(self.messages) if m.matches(match)), None)

    def __str__(self) -> str:
        lines = [f"chat {self.chat_id} «{self.title}», {len(self.messages)} message(s):"]
        lines.extend(m.render() for m in self.messages)
        if self.pinned is not None:
            lines.append(f"pinned: #{self.pinned.message_id} {self.pinned.text[:60]!r}")
        if self.reply_keyboard:
            keyboard = " / ".join(" ".join(f"[{b}]" for b in row) for row in self.reply_keyboard)
            lines.append(f"reply keyboard: {keyboard}")
        return "\n".join(lines)


def message_view(stored: StoredMessage, files: Mapping[str, StoredFile]) -> ScreenMessage:
    return ScreenMessage.build(
        stored.data,
        from_bot=stored.from_bot,
        files=files,
        deleted=stored.deleted,
        reply_keyboard=stored.reply_keyboard,
    )


def _labels(markup: JsonDict | None) -> tuple[tuple[str, ...], ...] | None:
    if not markup or "keyboard" not in markup:
        return None
    return tuple(
        tuple(b if isinstance(b, str) else str(b.get("text", "")) for b in row)
        for row in markup["keyboard"]
    )


def _file_of(
    data: JsonDict, files: Mapping[str, StoredFile], from_bot: bool
) -> ReceivedFile | None:
    if "document" in data:
        file_id = data["document"]["file_id"]
    elif data.get("photo"):
        file_id = data["photo"][-1]["file_id"]  # the largest size
    else:
        for key in ("voice", "audio", "video", "animation", "sticker", "video_note"):
            if key in data:
                file_id = data[key]["file_id"]
                break
        else:
            return None
    stored = files.get(file_id)
    if stored is None:
        return None
    return ReceivedFile(
        message_id=int(data["message_id"]),
        file_id=file_id,
        filename=stored.filename,
        mime_type=stored.mime_type,
        data=stored.data,
        caption=str(data.get("caption") or ""),
        from_bot=from_bot,
    )
