"""Messages for group chats: a persistent queue and the paced poster that drains it.

Telegram lets a bot post about 20 messages a minute into one group and answers
429 with retry_after beyond that. Summaries must never be dropped, so every
group message is a row first (`group_posts`); the poster sends the oldest row of
each chat, marks it sent only after Telegram accepted it, keeps each chat under
`limit` messages per `window` (counted from the rows themselves, so a restart
does not forget what was just sent), waits out a 429, and follows a group that
became a supergroup. No aiogram here: the sending is a `Transport`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.moments import as_utc
from storage.models import GroupBinding, GroupPost

log = logging.getLogger(__name__)

# Telegram's documented limit is 20 a minute; two are left for the bot's answers
# to commands in the same group (/status, /bind).
DEFAULT_LIMIT = 18
DEFAULT_WINDOW = timedelta(seconds=60)
IDLE_POLL = 1.0
BACKOFF_BASE = 5.0
BACKOFF_MAX = 600.0
# A post taken for sending is left alone by other instances this long (a crash
# while sending makes it due again after that: sent at least once, never dropped).
CLAIM_FOR = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class Post:
    """One message to post: a text, or a document with `text` as its caption."""

    text: str | None = None
    document: bytes | None = None
    filename: str | None = None


class RetryAfter(Exception):
    """Telegram's flood control: nothing may be sent to the chat for `seconds`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds}")
        self.seconds = seconds


class ChatMigrated(Exception):
    """The group became a supergroup with a new id."""

    def __init__(self, new_chat_id: int) -> None:
        super().__init__(f"migrated to {new_chat_id}")
        self.new_chat_id = new_chat_id


class PostFailed(Exception):
    """Any other refusal (bot removed, chat not found, network): tried again later."""


class Transport(Protocol):
    async def send_text(self, chat_id: int, text: str) -> None: ...

    async def send_document(
        self, chat_id: int, data: bytes, filename: str, caption: str | None
    ) -> None: ...


async def group_of(session: AsyncSession, account_id: str) -> int | None:
    """The group bound to the account, if any."""
    return await session.scalar(
        select(GroupBinding.chat_id).where(GroupBinding.account_id == account_id)
    )


async def enqueue(
    session: AsyncSession,
    *,
    chat_id: int,
    account_id: str | None,
    key: str,
    posts: Sequence[Post],
    now: datetime,
) -> int:
    """Queue `posts` for the chat in order; commits. A key queued before is a no-op."""
    if not posts:
        return 0
    if await queued(session, key):
        return 0
    for index, post in enumerate(posts):
        session.add(
            GroupPost(
                dedupe_key=f"{key}:{index}",
                chat_id=chat_id,
                account_id=account_id,
                text=post.text,
                document=post.document,
                filename=post.filename,
                created_at=as_utc(now),
                attempts=0,
            )
        )
    try:
        await session.commit()
    except IntegrityError:
        # Queued at the same moment by someone else: theirs is the one.
        await session.rollback()
        return 0
    return len(posts)


async def queued(session: AsyncSession, key: str) -> bool:
    """Whether posts under this key were queued (sent or not)."""
    first = await session.scalar(select(GroupPost.id).where(GroupPost.dedupe_key == f"{key}:0"))
    return first is not None


async def follow_migration(session: AsyncSession, old_chat_id: int, new_chat_id: int) -> bool:
    """A group became a supergroup: its binding and its waiting posts follow. Commits.

    Returns whether a binding moved.
    """
    moved = await session.execute(
        update(GroupBinding).where(GroupBinding.chat_id == old_chat_id).values(chat_id=new_chat_id)
    )
    await session.execute(
        update(GroupPost)
        .where(GroupPost.chat_id == old_chat_id, GroupPost.sent_at.is_(None))
        .values(chat_id=new_chat_id)
    )
    await session.commit()
    return bool(moved.rowcount)  # type: ignore[attr-defined]


async def pending_count(session: AsyncSession) -> int:
    count = await session.scalar(
        select(func.count()).select_from(GroupPost).where(GroupPost.sent_at.is_(None))
    )
    return int(count or 0)


def _backoff(attempts: int) -> float:
    return float(min(BACKOFF_MAX, BACKOFF_BASE * 2.0 ** min(attempts - 1, 10)))


class GroupPoster:
    """Drains the queue at each group's pace; `run()` is the background task.

    `clock` gives the current UTC time (injectable for tests); `on_tick` runs at
    every turn of the loop (the digest scheduler hooks in there, with its own clock).
    """

    def __init__(
        self,
        session_pool: async_sessionmaker[AsyncSession],
        transport: Transport,
        *,
        limit: int = DEFAULT_LIMIT,
        window: timedelta = DEFAULT_WINDOW,
        clock: Callable[[], datetime] | None = None,
        on_tick: Callable[[], Awaitable[object]] | None = None,
        idle: float = IDLE_POLL,
    ) -> None:
        self._pool = session_pool
        self._transport = transport
        self.limit = limit
        self.window = window
        self._clock = clock or (lambda: datetime.now(UTC))
        self._on_tick = on_tick
        self._idle = idle
        self._wake = asyncio.Event()
        # One turn at a time, so a post is never sent twice by overlapping turns.
        self._turn = asyncio.Lock()
        self._stopping = False

    def wake(self) -> None:
        """Something was queued: look at once instead of at the next poll."""
        self._wake.set()

    async def run_once(self) -> float:
        """One turn: the scheduled work (digest), then what is due; seconds to the next."""
        async with self._turn:
            if self._on_tick is not None:
                await self._on_tick()
            return await self.tick()

    def stop(self) -> None:
        """Let `run()` return after the current turn (no query is cut in half)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Post until stopped; a failure of one turn is logged, not fatal."""
        while not self._stopping:
            try:
                delay = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Group poster turn failed")
                delay = self._idle
            if self._stopping:
                break
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.01, delay))

    async def _sent_recently(
        self, session: AsyncSession, chat_id: int, now: datetime
    ) -> list[datetime]:
        rows = await session.scalars(
            select(GroupPost.sent_at)
            .where(GroupPost.chat_id == chat_id, GroupPost.sent_at > now - self.window)
            .order_by(GroupPost.sent_at)
        )
        return [as_utc(moment) for moment in rows if moment is not None]

    async def tick(self) -> float:
        """Send what is due now (at most one message per chat); seconds until the next is due."""
        now = self._clock()
        next_due = self._idle
        async with self._pool() as session:
            heads = await session.scalars(
                select(GroupPost)
                .where(
                    GroupPost.sent_at.is_(None),
                    GroupPost.id.in_(
                        select(func.min(GroupPost.id))
                        .where(GroupPost.sent_at.is_(None))
                        .group_by(GroupPost.chat_id)
                    ),
                )
                .order_by(GroupPost.id)
            )
            for post in list(heads):
                wait = await self._wait_for(session, post, now)
                if wait > 0:
                    next_due = min(next_due, wait)
                    continue
                next_due = min(next_due, await self._send(session, post, now))
        return next_due

    async def _wait_for(self, session: AsyncSession, post: GroupPost, now: datetime) -> float:
        if post.not_before is not None and as_utc(post.not_before) > now:
            return (as_utc(post.not_before) - now).total_seconds()
        recent = await self._sent_recently(session, post.chat_id, now)
        if len(recent) < self.limit:
            return 0.0
        return (recent[len(recent) - self.limit] + self.window - now).total_seconds()

    async def _claim(self, session: AsyncSession, post: GroupPost, now: datetime) -> bool:
        """Take the post for this attempt (committed), so that another bot instance
        draining the same table does not send it too."""
        claimed = await session.execute(
            update(GroupPost)
            .where(
                GroupPost.id == post.id,
                GroupPost.sent_at.is_(None),
                or_(GroupPost.claimed_until.is_(None), GroupPost.claimed_until < now),
            )
            .values(claimed_until=now + CLAIM_FOR, attempts=GroupPost.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        await session.commit()
        return bool(claimed.rowcount)  # type: ignore[attr-defined]

    async def _send(self, session: AsyncSession, post: GroupPost, now: datetime) -> float:
        """One attempt at one post; the seconds after which this chat may go on."""
        if not await self._claim(session, post, now):
            return self._idle
        await session.refresh(post)
        post.claimed_until = None
        try:
            if post.document is not None:
                await self._transport.send_document(
                    post.chat_id, post.document, post.filename or "file.xlsx", post.text
                )
            else:
                await self._transport.send_text(post.chat_id, post.text or "")
        except RetryAfter as exc:
            # Counted from the answer, not from the start of the turn: Telegram's
            # window opened when it answered.
            post.not_before = self._clock() + timedelta(seconds=exc.seconds)
            post.last_error = "429"
            await session.commit()
            log.warning("Group %s: flood control, waiting %.0f s", post.chat_id, exc.seconds)
            return exc.seconds
        except ChatMigrated as exc:
            old = post.chat_id
            await session.commit()
            moved = await follow_migration(session, old, exc.new_chat_id)
            log.warning(
                "Group %s became supergroup %s%s",
                old,
                exc.new_chat_id,
                "" if moved else " (not bound: update SUPERVISOR_CHAT_ID)",
            )
            return 0.0
        except PostFailed as exc:
            delay = _backoff(post.attempts)
            post.not_before = self._clock() + timedelta(seconds=delay)
            post.last_error = str(exc)[:300]
            await session.commit()
            log.warning(
                "Group %s: post %s not sent (%s); next try in %.0f s",
                post.chat_id,
                post.id,
                exc,
                delay,
            )
            return delay
        post.sent_at = self._clock()
        post.document = None  # delivered: the bytes are in the chat now
        post.last_error = None
        await session.commit()
        return 0.0
