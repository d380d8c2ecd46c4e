"""Receiving updates through the inbox, by long polling or by webhook (webhook.py).

aiogram's own polling confirms an update to Telegram (the next getUpdates offset)
before its handler has finished, so a crash or a stop in between loses it. Here an
update is first committed to the inbox (storage/inbox.py), only then confirmed (the
offset moves on, or the webhook request is answered 200), then handled through
`dispatcher.feed_update` and marked done. At start the rows not done are handled
again, oldest first (the handlers get `replayed=True`: it may have been handled
already); a redelivered update_id is stored and handled once. With the FSM on the
bot's database, an update's FSM changes are committed in the transaction that marks
it done.

Several instances may share the inbox (webhook mode behind a load balancer). Each row
is claimed by the instance that stored it, which renews its claims every third of
`inbox_lease` while it lives. Only rows whose claim ran out — their instance died —
are taken up by another instance (looked for every `inbox_lease`) or at start, so no
update is handled twice by two live instances. A starting instance first waits up to
`inbox_lease` for the claims of a dead instance to run out, so that its own new
updates do not overtake the older ones of the same user.

One user's updates are handled in the order they came; different users' updates run
concurrently, at most `concurrency` at a time.

A message that may hold a password (handlers.auth.may_hold_password), and a /start
with an argument (an invite link's code, which the database keeps only hashed), is
stored redacted; its text lives only in memory until its handler has run. If the bot
dies before that, the message is deleted at the next start and the user is asked again
(to open the invite link again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.methods import GetUpdates
from aiogram.types import Message, Update
from aiogram.utils.backoff import Backoff, BackoffConfig
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import texts
from handlers.auth import may_hold_password, message_lost
from services.accounts import linked_among
from services.team import invite_accepted_since
from storage.done_marks import DoneMarks
from storage.engine import engine_of
from storage.fsm import FsmChanges, SqlStorage
from storage.inbox import Inbox, Incoming, Stored

log = logging.getLogger(__name__)

POLL_BACKOFF = BackoffConfig(min_delay=0.5, max_delay=10.0, factor=1.6, jitter=0.2)
PRUNE_EVERY = 600.0  # seconds
# Updates accepted but not handled yet: polling waits above this (memory stays bounded).
MAX_PENDING = 500

# The commands that can lead into the login flow: a user's text after one of them, while
# it is still being handled, may be a login or a password.
_LOGIN_COMMANDS = frozenset({"start", "logout"})


def _now() -> datetime:
    return datetime.now(UTC)


def _command_of(text: str | None) -> str | None:
    if not text or not text.startswith("/"):
        return None
    return text[1:].split(maxsplit=1)[0].split("@", 1)[0].lower() if len(text) > 1 else None


def _has_argument(text: str | None) -> bool:
    """Whether a command carries an argument (/start <code>: an invite link)."""
    return text is not None and len(text.split(maxsplit=1)) > 1


def _sequence_key(update: Update) -> int:
    """Whose updates must keep their order: the sender's, else the chat's."""
    event = update.event
    user = getattr(event, "from_user", None)
    if user is not None:
        return int(user.id)
    chat = getattr(event, "chat", None)
    inner = getattr(event, "message", None)
    if chat is None and isinstance(inner, Message):
        chat = inner.chat
    return int(chat.id) if chat is not None else update.update_id


def _private_message(update: Update) -> Message | None:
    message = update.message or update.edited_message
    if message is None or message.chat.type != "private" or message.from_user is None:
        return None
    return message


def _senders(updates: Sequence[Update]) -> set[int]:
    """The senders of the private messages among the updates."""
    return {
        message.from_user.id
        for message in map(_private_message, updates)
        if message is not None and message.from_user is not None
    }


class UpdateRunner:
    """Stores, confirms, then handles updates; the same runner serves polling and webhook."""

    def __init__(
        self,
        *,
        bot: Bot,
        dispatcher: Dispatcher,
        session_pool: async_sessionmaker[AsyncSession],
        concurrency: int = 16,
        polling_timeout: int = 10,
        shutdown_grace: float = 8.0,
        inbox_lease: float = 6.0,
        sole_instance: bool = False,
    ) -> None:
        self.bot = bot
        self.dispatcher = dispatcher
        self.instance = f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.inbox = Inbox(session_pool, owner=self.instance, lease=timedelta(seconds=inbox_lease))
        self._lease = inbox_lease
        # One instance only (SQLite): every claim at start is a dead predecessor's.
        self._sole = sole_instance
        self._claims: asyncio.Task[None] | None = None
        # The runner's own transactions need no ORM session (storage.engine.engine_of).
        self._engine = engine_of(session_pool)
        self._session_pool = session_pool
        # FSM on the bot's database: an update's FSM changes are committed with its done
        # mark, in one transaction (storage/fsm.py, storage/done_marks.py). Redis keeps
        # its own writes.
        storage = dispatcher.fsm.storage
        self._fsm = storage if isinstance(storage, SqlStorage) else None
        self._done = DoneMarks(self._engine, self.inbox, self._fsm)
        self._semaphore = asyncio.Semaphore(concurrency)
        self._polling_timeout = polling_timeout
        self._shutdown_grace = shutdown_grace
        self._workflow: dict[str, Any] = {"dispatcher": dispatcher, "bots": [bot]}
        self._tails: dict[int, asyncio.Task[None]] = {}
        self._in_flight: set[int] = set()  # update ids scheduled and not finished
        self._tasks: set[asyncio.Task[None]] = set()
        self._login_commands: Counter[int] = Counter()
        self._stopping = asyncio.Event()
        self._accepting = asyncio.Lock()
        self._last_prune = 0.0
        # For tests and metrics: updates handled, and redelivered ones left out.
        self.handled = 0
        self.duplicates = 0
        self.failed = 0  # handlers that raised past the errors router

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Startup hooks, then the updates a crash or a stop left in the inbox."""
        await self.dispatcher.emit_startup(
            bot=self.bot, **self.dispatcher.workflow_data, **self._workflow
        )
        await self._take_over()
        self._claims = asyncio.create_task(self._keep_claims(), name="inbox-claims")
        await self._prune_now()

    async def _take_over(self) -> None:
        """Replay the rows a dead instance (or the last stop) left; wait for live claims
        of other instances to run out, at most one lease: a dead one's claims have by then.
        """
        if self._sole:
            left = await self.inbox.claim_lapsed(_now(), every=True)
            if left:
                log.info("Replaying %d update(s) not finished before the last stop", len(left))
            for row in left:
                self._replay(row)
            return
        deadline = time.monotonic() + self._lease
        while True:
            await self.replay_lapsed()
            remaining = deadline - time.monotonic()
            now = _now()
            soonest = await self.inbox.next_lapse(now) if remaining > 0 else None
            if soonest is None:
                return
            await asyncio.sleep(min(remaining, (soonest - now).total_seconds() + 0.05))

    async def replay_lapsed(self) -> int:
        """Claim and schedule the unfinished rows nobody holds; returns their number."""
        left = await self.inbox.claim_lapsed(_now())
        if left:
            log.info("Replaying %d update(s) not finished by their instance", len(left))
        for row in left:
            # Ours already, when renewing failed for a whole lease (the database was down).
            if row.update_id not in self._in_flight:
                self._replay(row)
        return len(left)

    async def _keep_claims(self) -> None:
        """Renew this instance's claims; now and then take up what a dead instance left."""
        rounds = 0
        while True:
            await asyncio.sleep(self._lease / 3)
            rounds += 1
            try:
                if self._tasks:
                    await self.inbox.renew(_now())
                if rounds % 3 == 0 and not self.stopping:
                    await self.replay_lapsed()
            except Exception as exc:
                log.warning("Inbox claims not renewed: %s", type(exc).__name__)

    async def shutdown(self) -> None:
        """Let handlers in flight finish (bounded), give up the rest, then the shutdown hooks."""
        await self.drain(self._shutdown_grace)
        if self._claims is not None:
            self._claims.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._claims
        try:
            await self.inbox.release()
        except Exception as exc:
            log.warning("Inbox claims not released: %s", type(exc).__name__)
        await self.dispatcher.emit_shutdown(
            bot=self.bot, **self.dispatcher.workflow_data, **self._workflow
        )

    def stop(self) -> None:
        """Stop taking updates (a signal handler calls it); run_polling then returns."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    async def drain(self, grace: float) -> bool:
        """Wait for every accepted update; after `grace` s the rest stays for the next start."""
        if not self._tasks:
            return True
        _done, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        if pending:
            log.warning("%d update(s) left unfinished; they run at the next start", len(pending))
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=1.0)
        return not pending

    # --- receiving ---------------------------------------------------------------------

    async def accept(self, updates: Sequence[Update]) -> int:
        """Commit the updates to the inbox, then schedule the new ones; returns their number.

        When this returns, the updates are safe: the caller may confirm them to Telegram.
        """
        async with self._accepting:
            async with self._engine.begin() as connection:
                # One query for the whole batch: which senders are linked (see _holds_secret).
                linked = await linked_among(connection, _senders(updates))
                incoming = [await self._incoming(update, linked) for update in updates]
                stored = await self.inbox.store(incoming, _now(), connection=connection)
            # Committed: only now may they be handled.
            new = 0
            for update, item in zip(updates, incoming, strict=True):
                if update.update_id in stored:
                    stored.discard(update.update_id)  # a batch may carry an id twice
                    self._schedule(update, redacted=item.redacted)
                    new += 1
        self.duplicates += len(updates) - new
        return new

    async def _incoming(self, update: Update, linked: set[int]) -> Incoming:
        message = _private_message(update)
        if message is not None and await self._holds_secret(message, linked):
            kind = "message" if update.message is not None else "edited_message"
            redacted: dict[str, object] = {"update_id": update.update_id, "redacted": kind}
            if _command_of(message.text) == "start":
                redacted["invite"] = True  # lost in a crash: the link must be opened again
            return Incoming(
                update.update_id,
                json.dumps(redacted),
                redacted=True,
                chat_id=message.chat.id,
                message_id=message.message_id,
            )
        return Incoming(update.update_id, update.model_dump_json(exclude_none=True, by_alias=True))

    async def _holds_secret(self, message: Message, linked: set[int]) -> bool:
        """Whether the message may hold a password or an invite code; `linked`: the batch's
        linked senders."""
        assert message.from_user is not None
        user_id = message.from_user.id
        command = _command_of(message.text)
        if command in texts.COMMANDS:
            if command in _LOGIN_COMMANDS:
                self._login_commands[user_id] += 1
            # A deep link's argument may be an invite code, a secret stored only hashed.
            return command == "start" and _has_argument(message.text)
        if message.text is None and message.caption is None and not message.photo:
            return False
        if self._login_commands[user_id] > 0:
            return True
        if user_id not in linked:
            return True
        state = self.dispatcher.fsm.get_context(self.bot, message.chat.id, user_id)
        return may_hold_password(await state.get_state(), linked=True)

    # --- handling ------------------------------------------------------------------------

    def _replay(self, row: Stored) -> None:
        if row.redacted:
            assert row.chat_id is not None and row.message_id is not None
            chat_id = row.chat_id
            self._chain(
                chat_id, row.update_id, lambda: self._message_lost(chat_id, row), secret=True
            )
            return
        update = Update.model_validate(json.loads(row.payload), context={"bot": self.bot})
        self._schedule(update, replayed=True)

    def _schedule(self, update: Update, *, redacted: bool = False, replayed: bool = False) -> None:
        key = _sequence_key(update)
        command = None
        message = _private_message(update)
        if message is not None and update.message is not None:
            command = _command_of(message.text)

        async def handle() -> None:
            try:
                if redacted and message is not None:
                    # Previous updates of this user are done: this is the state it meets.
                    state = self.dispatcher.fsm.get_context(self.bot, message.chat.id, key)
                    await self.inbox.mark_started(update.update_id, await state.get_state(), _now())
                # `replayed`: it may have been handled already (only its done mark lost).
                await self.dispatcher.feed_update(
                    self.bot, update, replayed=replayed, **self._workflow
                )
            finally:
                if command in _LOGIN_COMMANDS and self._login_commands[key] > 0:
                    self._login_commands[key] -= 1

        self._chain(key, update.update_id, handle, secret=redacted)

    async def _message_lost(self, chat_id: int, row: Stored) -> None:
        assert row.message_id is not None
        state = self.dispatcher.fsm.get_context(self.bot, chat_id, chat_id)
        invite = json.loads(row.payload).get("invite") is True
        accepted = False
        if invite and row.received_at is not None:
            # A private chat's id is its user's.
            async with self._session_pool() as session:
                accepted = await invite_accepted_since(session, chat_id, row.received_at)
        await message_lost(
            self.bot,
            chat_id,
            row.message_id,
            state,
            state_at_start=row.state_at_start,
            started=row.started,
            invite=invite,
            invite_accepted=accepted,
        )

    def _chain(self, key: int, update_id: int, handle: Any, *, secret: bool = False) -> None:
        """Run `handle` after the key's previous update, then mark the update done."""
        previous = self._tails.get(key)

        async def run() -> None:
            if previous is not None:
                await asyncio.wait({previous})
            async with self._semaphore:
                await self._run_one(update_id, handle(), secret=secret)

        task = asyncio.create_task(run(), name=f"update-{update_id}")
        self._tails[key] = task
        self._tasks.add(task)
        self._in_flight.add(update_id)

        def forget(done: asyncio.Task[None]) -> None:
            self._tasks.discard(done)
            self._in_flight.discard(update_id)
            if self._tails.get(key) is done:
                del self._tails[key]

        task.add_done_callback(forget)

    async def _run_one(self, update_id: int, handling: Awaitable[Any], *, secret: bool) -> None:
        with self._collecting(secret) as changes:
            try:
                await handling
            except asyncio.CancelledError:
                raise  # not done: it runs again at the next start
            except Exception as exc:
                # The errors router has already answered the user; this is what it let
                # through. Only the type: an exception text may quote what the user typed.
                log.error("Update %s failed: %s", update_id, type(exc).__name__)
                self.failed += 1
        self.handled += 1
        try:
            await self._done.mark(update_id, changes)
        except Exception as exc:
            # Not done: it is handled again at the next start, which also brings the
            # stored FSM state in line with what the user saw (memory has it until then).
            log.error("Update %s not marked done: %s", update_id, type(exc).__name__)

    def _collecting(self, secret: bool) -> contextlib.AbstractContextManager[FsmChanges | None]:
        """With the SQL FSM storage, the update's FSM writes wait for its done mark.

        A crash before that mark replays the update, which brings the state back. A
        message kept redacted cannot be replayed (its text was never stored): its
        writes are made at once, as the user sees them (handlers.auth.message_lost).
        """
        if self._fsm is None or secret:
            return contextlib.nullcontext()
        return self._fsm.collecting()

    async def _prune_now(self) -> None:
        self._last_prune = time.monotonic()
        try:
            removed = await self.inbox.prune(_now())
        except Exception as exc:
            log.warning("Inbox not pruned: %s", type(exc).__name__)
            return
        if removed:
            log.debug("Pruned %d done update(s) from the inbox", removed)

    async def prune_if_due(self) -> None:
        if time.monotonic() - self._last_prune >= PRUNE_EVERY:
            await self._prune_now()

    async def _room(self) -> None:
        while len(self._tasks) >= MAX_PENDING and not self.stopping:
            await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)

    # --- long polling --------------------------------------------------------------------

    async def run_polling(self, allowed_updates: list[str] | None = None) -> None:
        """Poll until stop(): store each batch, then confirm it with the next offset."""
        offset = await self.inbox.next_offset()
        backoff = Backoff(POLL_BACKOFF)
        stop_waiter = asyncio.create_task(self._stopping.wait())
        request_timeout = self._polling_timeout + int(self.bot.session.timeout or 60)
        log.info("Polling for updates")
        try:
            while not self.stopping:
                await self._room()
                method = GetUpdates(
                    offset=offset, timeout=self._polling_timeout, allowed_updates=allowed_updates
                )
                poll = asyncio.create_task(self.bot(method, request_timeout=request_timeout))
                await asyncio.wait({poll, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
                if not poll.done():
                    # Stopping: whatever this poll would bring stays unconfirmed at Telegram.
                    poll.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await poll
                    break
                try:
                    updates = poll.result()
                    if updates:
                        await self.accept(updates)
                except Exception as exc:
                    # Nothing was confirmed: the same updates come again with the same offset.
                    log.warning(
                        "Polling failed (%s); retrying in %.1f s",
                        type(exc).__name__,
                        backoff.next_delay,
                    )
                    await backoff.asleep()
                    continue
                backoff.reset()
                if updates:
                    offset = max(u.update_id for u in updates) + 1
                await self.prune_if_due()
        finally:
            stop_waiter.cancel()
            log.info("Polling stopped")
