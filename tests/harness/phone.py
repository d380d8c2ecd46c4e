"""The scripted user: a phone in a private chat with the bot, and group chats.

    phone = tg.user(user_id=1001, first_name="Иван", username="ivan")
    reply = await phone.ask("/start")                  # send, wait for the bot's reply
    await phone.press("Передача показаний по дому")   # inline button by its label
    menu = await phone.wait_for("Выберите дом")        # a bot message (new or edited)
    print(phone.screen())                              # the chat as the phone shows it

Every action returns the Update it produced. Waits are driven by the fake server's
change feed (notified on every API call), never by sleeping and polling; by default
they only look at what happened after this chat's last user action, so an old message
that happens to match cannot satisfy a wait for a new one.
"""

# Every wait takes its own timeout: a test states its time budget where it waits.
# ruff: noqa: ASYNC109

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .screen import Match, ReceivedFile, Screen, ScreenMessage
from .state import (
    GROUP_ANONYMOUS_BOT,
    ChatEvent,
    ChatState,
    HarnessError,
    JsonDict,
    StoredMessage,
    unix_now,
)
from .telegram_html import command_entities, utf16_len

if TYPE_CHECKING:
    from .fake_telegram import FakeTelegram

# A message to act on: its id, its Message dict, the Update that carried it, or a view.
MessageRef = int | JsonDict | ScreenMessage

DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Reaction:
    """How the bot reacted to one update, as far as it has so far."""

    update: JsonDict
    answer: JsonDict | None  # answerCallbackQuery's text/show_alert for a button press
    messages: tuple[ScreenMessage, ...]  # bot messages sent or edited since the update
    deleted: tuple[int, ...]  # ids of messages the bot deleted since the update

    @property
    def message(self) -> ScreenMessage | None:
        """The latest message the bot sent or edited."""
        return self.messages[-1] if self.messages else None

    @property
    def text(self) -> str:
        return self.message.text if self.message else ""


class ChatView:
    """Reading and waiting, common to a private chat and a group."""

    def __init__(self, tg: FakeTelegram, chat_id: int) -> None:
        self.tg = tg
        self.chat_id = chat_id
        self._chat_ids = {chat_id}  # a migrated group keeps its old id's events
        self._since = 0  # event seq of this chat's last user action

    @property
    def chat(self) -> ChatState:
        return self.tg.chat(self.chat_id)

    def screen(self) -> Screen:
        """The chat as the phone shows it now."""
        return self.tg.screen(self.chat_id)

    def bot_messages(self) -> list[ScreenMessage]:
        return self.screen().bot_messages()

    def last_bot_message(self) -> ScreenMessage | None:
        return self.screen().last_bot_message()

    def documents(self) -> list[ReceivedFile]:
        """Documents the bot sent to this chat (still visible), with their bytes."""
        return self._files("document")

    def photos(self) -> list[ReceivedFile]:
        return self._files("photo")

    def _files(self, kind: str) -> list[ReceivedFile]:
        return [
            m.file
            for m in self.screen().messages
            if m.from_bot and m.kind == kind and m.file is not None
        ]

    def mark(self) -> int:
        """A `since=` value: wait only for what happens after this moment."""
        return self.tg.mark()

    async def wait_for(
        self,
        match: Match | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        since: int | None = None,
    ) -> ScreenMessage:
        """Wait until the bot sends or edits a message here that matches.

        `match`: substring of the text/caption, compiled regex, or predicate on the
        ScreenMessage; None = any. Only bot messages sent or edited after `since`
        (default: this chat's last user action) count. Returns the message as it was
        at that moment; raises WaitTimeout showing the chat, the calls and the bot's log.
        """
        start = self._since if since is None else since

        def check() -> ScreenMessage | None:
            self.tg.raise_if_bot_died()
            for event in self._events_after(start):
                if event.from_bot and event.kind in ("new", "edit") and event.snapshot:
                    view = ScreenMessage.build(event.snapshot, from_bot=True, files=self.tg.files)
                    if match is None or view.matches(match):
                        return view
            return None

        try:
            return await self.tg.feed.wait_for(check, timeout)
        except TimeoutError:
            raise self.tg.timeout_error(
                f"no bot message matching {_describe(match)} in chat {self.chat_id} "
                f"within {timeout} s",
                self.chat_id,
            ) from None

    async def wait_screen(
        self, predicate: Callable[[Screen], bool], *, timeout: float = DEFAULT_TIMEOUT
    ) -> Screen:
        """Wait until the whole screen satisfies a predicate (e.g. a message is gone)."""

        def check() -> Screen | None:
            self.tg.raise_if_bot_died()
            screen = self.screen()
            return screen if predicate(screen) else None

        try:
            return await self.tg.feed.wait_for(check, timeout)
        except TimeoutError:
            raise self.tg.timeout_error(
                f"the screen of chat {self.chat_id} did not reach the expected state "
                f"within {timeout} s",
                self.chat_id,
            ) from None

    async def wait_for_answer_to(
        self, update: JsonDict, *, timeout: float = DEFAULT_TIMEOUT
    ) -> Reaction:
        """Wait until the bot reacted to an update this chat produced.

        A button press counts as answered when the bot called answerCallbackQuery for
        it; a message when the bot sent, edited or deleted a message here after it.
        """
        seq = self.tg.update_event_seq(update)
        if not seq:
            raise HarnessError("this update was not produced by the harness")
        query_id = (update.get("callback_query") or {}).get("id")

        def check() -> Reaction | None:
            self.tg.raise_if_bot_died()
            for event in self._events_after(seq):
                if query_id is not None:
                    if event.kind == "answer" and event.callback_query_id == query_id:
                        return self._reaction(update, seq)
                elif event.from_bot and event.kind in ("new", "edit", "delete"):
                    return self._reaction(update, seq)
            return None

        what = "answerCallbackQuery" if query_id else "a reply"
        try:
            return await self.tg.feed.wait_for(check, timeout)
        except TimeoutError:
            raise self.tg.timeout_error(
                f"the bot gave no {what} to update {update.get('update_id')} within {timeout} s",
                self.chat_id,
            ) from None

    def _events_after(self, seq: int) -> list[ChatEvent]:
        return [e for e in self.tg.events[seq:] if e.chat_id in self._chat_ids]

    def _reaction(self, update: JsonDict, seq: int) -> Reaction:
        events = self._events_after(seq)
        messages = tuple(
            ScreenMessage.build(e.snapshot, from_bot=True, files=self.tg.files)
            for e in events
            if e.from_bot and e.kind in ("new", "edit") and e.snapshot
        )
        deleted = tuple(e.message_id for e in events if e.kind == "delete" and e.message_id)
        answer = None
        query_id = (update.get("callback_query") or {}).get("id")
        if query_id is not None:
            answer = self.tg.callback_queries[query_id].answer
        return Reaction(update=update, answer=answer, messages=messages, deleted=deleted)

    def _acted(self, update: JsonDict) -> JsonDict:
        self._since = self.tg.update_event_seq(update) or self.tg.mark()
        return update

    def _stored(self, message: MessageRef) -> StoredMessage:
        message_id = _message_id(message)
        stored = self.chat.messages.get(message_id)
        if stored is None:
            raise HarnessError(f"there is no message #{message_id} in chat {self.chat_id}")
        return stored

    def _press(self, user: JsonDict, label: str, message: MessageRef | None) -> JsonDict:
        chat = self.chat
        if message is not None:
            stored = self._stored(message)
            if stored.deleted:
                raise HarnessError(
                    f"message #{stored.message_id} was deleted; its buttons are gone"
                )
            candidates = [stored]
        else:
            candidates = [m for m in reversed(chat.visible()) if m.from_bot]
        for stored in candidates:
            for row in (stored.data.get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    if button.get("text") == label:
                        return self._activate(user, stored, button)
        raise HarnessError(
            f"no inline button «{label}» on "
            + (f"message #{_message_id(message)}" if message is not None else "any bot message")
            + f" in chat {self.chat_id}. Visible buttons:\n{self._visible_buttons()}"
        )

    def _activate(self, user: JsonDict, stored: StoredMessage, button: JsonDict) -> JsonDict:
        if "callback_data" in button:
            return self.tg.user_callback(self.chat_id, user, stored, str(button["callback_data"]))
        kind = next((k for k in button if k != "text"), "?")
        if kind == "url":
            raise HarnessError(
                f"«{button['text']}» is a URL button ({button['url']}): a phone opens the "
                "browser and the bot gets nothing"
            )
        raise HarnessError(f"«{button['text']}» is a {kind} button, which the harness cannot press")

    def _visible_buttons(self) -> str:
        lines = []
        for stored in reversed(self.chat.visible()):
            rows = (stored.data.get("reply_markup") or {}).get("inline_keyboard", [])
            if stored.from_bot and rows:
                labels = " / ".join(" ".join(f"[{b.get('text')}]" for b in row) for row in rows)
                lines.append(f"  #{stored.message_id}: {labels}")
        return "\n".join(lines[:8]) or "  (no bot message has inline buttons)"


class Phone(ChatView):
    """A Telegram user with the app open in the private chat with the bot."""

    def __init__(self, tg: FakeTelegram, user: JsonDict, *, phone_number: str) -> None:
        super().__init__(tg, int(user["id"]))
        self.user = user
        self.user_id = int(user["id"])
        self.phone_number = phone_number

    # --- sending

    async def send(self, text: str, *, reply_to: MessageRef | None = None) -> JsonDict:
        """Type and send a text (commands get their bot_command entity, as the app does)."""
        return await self.send_content({"text": text, **command_entities(text)}, reply_to=reply_to)

    async def send_command(self, command: str, args: str = "") -> JsonDict:
        """Send /command [args] (e.g. from the menu)."""
        command = command if command.startswith("/") else f"/{command}"
        text = f"{command} {args}".strip()
        entity = {"type": "bot_command", "offset": 0, "length": utf16_len(command)}
        return await self.send_content({"text": text, "entities": [entity]})

    async def send_photo(
        self,
        data: bytes = b"\xff\xd8\xff\xe0fake-jpeg",
        *,
        caption: str | None = None,
        width: int = 1280,
        height: int = 960,
    ) -> JsonDict:
        """A photo; like Telegram it arrives in sizes, the largest last (same bytes here)."""
        sizes = []
        for w, h in ((90, max(1, 90 * height // width)), (width, height)):
            stored = self.tg.store_file("photo", data)
            sizes.append(
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "file_size": len(data),
                    "width": w,
                    "height": h,
                }
            )
        return await self.send_content({"photo": sizes, **_caption(caption)})

    async def send_document(
        self,
        filename: str,
        data: bytes,
        *,
        caption: str | None = None,
        mime_type: str | None = None,
    ) -> JsonDict:
        stored = self.tg.store_file("document", data, filename=filename, mime_type=mime_type)
        document: JsonDict = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_name": filename,
            "file_size": len(data),
        }
        if stored.mime_type:
            document["mime_type"] = stored.mime_type
        return await self.send_content({"document": document, **_caption(caption)})

    async def send_sticker(self, emoji: str = "👍") -> JsonDict:
        stored = self.tg.store_file("sticker", b"RIFF-fake-webp", filename="sticker.webp")
        return await self.send_content(
            {
                "sticker": {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "type": "regular",
                    "width": 512,
                    "height": 512,
                    "is_animated": False,
                    "is_video": False,
                    "emoji": emoji,
                    "file_size": len(stored.data),
                }
            }
        )

    async def send_voice(self, data: bytes = b"OggS-fake-opus", *, duration: int = 2) -> JsonDict:
        stored = self.tg.store_file("voice", data, mime_type="audio/ogg")
        return await self.send_content(
            {
                "voice": {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "duration": duration,
                    "mime_type": "audio/ogg",
                    "file_size": len(data),
                }
            }
        )

    async def send_contact(self, phone_number: str | None = None) -> JsonDict:
        """Share a contact (own number by default, as a request_contact button does)."""
        contact: JsonDict = {
            "phone_number": phone_number or self.phone_number,
            "first_name": self.user["first_name"],
        }
        if phone_number is None:
            contact["user_id"] = self.user_id
        return await self.send_content({"contact": contact})

    async def send_location(self, latitude: float, longitude: float) -> JsonDict:
        return await self.send_content({"location": {"latitude": latitude, "longitude": longitude}})

    async def send_content(
        self, content: JsonDict, *, reply_to: MessageRef | None = None
    ) -> JsonDict:
        """Send any Message content (escape hatch for kinds without a helper)."""
        if self.user_id in self.tg.faults.blocked_users:
            raise HarnessError("this user blocked the bot; call phone.unblock_bot() first")
        update = self.tg.user_message(
            self.chat_id,
            self.user,
            content,
            reply_to=_message_id(reply_to) if reply_to is not None else None,
        )
        return self._acted(update)

    async def edit(self, message: MessageRef, new_text: str) -> JsonDict:
        """Edit one of the user's own messages: an edited_message update."""
        return self._acted(self.tg.user_edit(self.chat_id, _message_id(message), new_text))

    async def forward(self, text: str, from_user: Phone | JsonDict | str | None = None) -> JsonDict:
        """Forward a text written by someone else (a str = a user hiding their account)."""
        date = unix_now() - 3600
        origin: JsonDict
        if isinstance(from_user, Phone):
            origin = {"type": "user", "date": date, "sender_user": from_user.user}
        elif isinstance(from_user, dict):
            origin = {"type": "user", "date": date, "sender_user": from_user}
        else:
            origin = {
                "type": "hidden_user",
                "date": date,
                "sender_user_name": from_user or "Неизвестный",
            }
        return await self.send_content({"text": text, "forward_origin": origin})

    # --- buttons

    async def press(self, label: str, *, message: MessageRef | None = None) -> JsonDict:
        """Press the inline button with this label on the latest bot message showing it.

        message= presses it on that (possibly old) message instead. Raises HarnessError
        listing the visible buttons when there is none.
        """
        return self._acted(self._press(self.user, label, message))

    async def press_data(self, data: str, *, message: MessageRef) -> JsonDict:
        """A callback with arbitrary data on a message (a tampered client; Telegram's
        own apps can only send the data of a button that is there)."""
        stored = self._stored(message)
        return self._acted(self.tg.user_callback(self.chat_id, self.user, stored, data))

    async def reply_keyboard(self, label: str) -> JsonDict:
        """Tap a button of the reply keyboard under the input field."""
        markup = self.chat.reply_keyboard
        if not markup:
            raise HarnessError("no reply keyboard is shown in this chat")
        for row in markup.get("keyboard", []):
            for button in row:
                button_dict = {"text": button} if isinstance(button, str) else button
                if button_dict.get("text") != label:
                    continue
                if markup.get("one_time_keyboard"):
                    self.chat.reply_keyboard = None  # the app hides it after one use
                if button_dict.get("request_contact"):
                    return await self.send_contact()
                if button_dict.get("request_location"):
                    return await self.send_location(55.03, 82.92)
                return await self.send(label)
        shown = " / ".join(
            " ".join(f"[{b if isinstance(b, str) else b.get('text')}]" for b in row)
            for row in markup.get("keyboard", [])
        )
        raise HarnessError(f"no reply keyboard button «{label}»; shown: {shown}")

    # --- the account

    async def block_bot(self) -> JsonDict:
        """Block the bot: its sends get 403, and it gets a my_chat_member update."""
        self.tg.faults.blocked_users.add(self.user_id)
        return self._acted(
            self.tg.member_update(
                self.chat_id, self.user, self.tg.bot_user, "member", "kicked", mine=True
            )
        )

    async def unblock_bot(self) -> JsonDict:
        self.tg.faults.blocked_users.discard(self.user_id)
        return self._acted(
            self.tg.member_update(
                self.chat_id, self.user, self.tg.bot_user, "kicked", "member", mine=True
            )
        )

    # --- one-line conversations

    async def ask(
        self, text: str, *, until: Match | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> ScreenMessage:
        """Send a text and return the bot's reply (its first message or edit after it).

        When the bot answers with several messages, pass until= to pick the one a test
        is about (e.g. the next prompt), instead of relying on their order.
        """
        await self.send(text)
        return await self.wait_for(until, timeout=timeout)

    async def tap(
        self,
        label: str,
        *,
        until: Match | None = None,
        message: MessageRef | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Reaction:
        """Press a button and wait until the bot answered the callback (and, with
        until=, until a message matching it appeared or was edited in)."""
        update = await self.press(label, message=message)
        reaction = await self.wait_for_answer_to(update, timeout=timeout)
        if until is None:
            return reaction
        await self.wait_for(until, timeout=timeout)
        return self._reaction(update, self.tg.update_event_seq(update))

    def callback_answers(self) -> list[JsonDict]:
        """Answers to this user's button presses (the toasts and alerts), oldest first."""
        return [
            q.answer
            for q in self.tg.callback_queries.values()
            if q.from_user_id == self.user_id and q.answer is not None
        ]


class Group(ChatView):
    """A group chat with people (Phones or plain user ids) and, usually, the bot."""

    @property
    def title(self) -> str:
        return self.chat.title or ""

    def _sender(self, who: Phone | JsonDict | int) -> JsonDict:
        if isinstance(who, Phone):
            return who.user
        if isinstance(who, dict):
            return who
        return self.tg.users[self.tg._user_id(who)]

    def _owner(self) -> JsonDict:
        owner = self.chat.owner
        if owner is None:
            raise HarnessError("this group has no owner; pass by=")
        return self.tg.users[owner]

    async def post(
        self, sender: Phone | JsonDict | int, text: str, *, reply_to: MessageRef | None = None
    ) -> JsonDict:
        """A member posts a text (the bot gets it only if privacy mode lets it through)."""
        update = self.tg.user_message(
            self.chat_id,
            self._sender(sender),
            {"text": text, **command_entities(text)},
            reply_to=_message_id(reply_to) if reply_to is not None else None,
        )
        return self._acted(update)

    async def post_as_anonymous_admin(self, text: str, *, signature: str | None = None) -> JsonDict:
        """An admin posting anonymously: from GroupAnonymousBot, sender_chat = the group."""
        content: JsonDict = {"text": text, **command_entities(text)}
        if signature:
            content["author_signature"] = signature
        update = self.tg.user_message(
            self.chat_id, dict(GROUP_ANONYMOUS_BOT), content, sender_chat=self.chat.as_json()
        )
        return self._acted(update)

    async def press(
        self, user: Phone | JsonDict | int, label: str, *, message: MessageRef | None = None
    ) -> JsonDict:
        """A member presses an inline button on a bot message in the group."""
        return self._acted(self._press(self._sender(user), label, message))

    async def add_bot(
        self, by: Phone | JsonDict | int | None = None, *, as_admin: bool = False
    ) -> JsonDict:
        """Add the bot: a my_chat_member update, then the new_chat_members message."""
        actor = self._sender(by) if by is not None else self._owner()
        chat = self.chat
        old = chat.bot_status
        if old in ("member", "administrator"):
            raise HarnessError("the bot is already in this group")
        chat.bot_status = "administrator" if as_admin else "member"
        update = self.tg.member_update(
            self.chat_id, actor, self.tg.bot_user, old, chat.bot_status, mine=True
        )
        self.tg.user_message(self.chat_id, actor, {"new_chat_members": [self.tg.bot_user]})
        return self._acted(update)

    async def remove_bot(self, by: Phone | JsonDict | int | None = None) -> JsonDict:
        actor = self._sender(by) if by is not None else self._owner()
        chat = self.chat
        old = chat.bot_status
        update = self.tg.member_update(
            self.chat_id, actor, self.tg.bot_user, old, "kicked", mine=True
        )
        chat.bot_status = "kicked"
        return self._acted(update)

    async def set_bot_admin(
        self, is_admin: bool = True, *, by: Phone | JsonDict | int | None = None
    ) -> JsonDict:
        actor = self._sender(by) if by is not None else self._owner()
        chat = self.chat
        old, chat.bot_status = chat.bot_status, ("administrator" if is_admin else "member")
        return self._acted(
            self.tg.member_update(
                self.chat_id, actor, self.tg.bot_user, old, chat.bot_status, mine=True
            )
        )

    async def add_member(
        self,
        user: Phone | JsonDict | int,
        *,
        admin: bool = False,
        by: Phone | JsonDict | int | None = None,
    ) -> JsonDict:
        """Someone joins: the new_chat_members message (and a chat_member update, which
        Telegram sends only to bots that asked for it in allowed_updates)."""
        member = self._sender(user)
        actor = self._sender(by) if by is not None else member
        chat = self.chat
        chat.members.add(int(member["id"]))
        if admin:
            chat.admins.add(int(member["id"]))
        self.tg.member_update(
            self.chat_id,
            actor,
            member,
            "left",
            "administrator" if admin else "member",
            mine=False,
        )
        update = self.tg.user_message(self.chat_id, actor, {"new_chat_members": [member]})
        return self._acted(update)

    async def migrate_to_supergroup(
        self, new_chat_id: int, *, by: Phone | JsonDict | int | None = None
    ) -> tuple[JsonDict, JsonDict]:
        """Upgrade to a supergroup: migrate_to_chat_id in the old chat, migrate_from_chat_id
        in the new one; the bot's calls to the old id then fail with migrate_to_chat_id."""
        actor = self._sender(by) if by is not None else self._owner()
        first, second = self.tg.migrate_group(self.chat_id, new_chat_id, actor)
        self.chat_id = new_chat_id
        self._chat_ids.add(new_chat_id)
        self.tg._groups[new_chat_id] = self
        self._acted(second)
        return first, second


def _message_id(message: MessageRef) -> int:
    if isinstance(message, int):
        return message
    if isinstance(message, ScreenMessage):
        return message.message_id
    if "update_id" in message:
        for key in ("message", "edited_message"):
            if key in message:
                return int(message[key]["message_id"])
        if "callback_query" in message:
            return int(message["callback_query"]["message"]["message_id"])
        raise HarnessError("this update carries no message")
    return int(message["message_id"])


def _caption(caption: str | None) -> JsonDict:
    if not caption:
        return {}
    return {"caption": caption, **command_entities(caption, "caption")}


def _describe(match: Match | None) -> str:
    if match is None:
        return "anything"
    if isinstance(match, str):
        return repr(match)
    if hasattr(match, "pattern"):
        return f"/{match.pattern}/"
    return getattr(match, "__name__", "a predicate")
