"""The inbox: every Telegram update is committed here before Telegram is told it arrived.

Each method is one short transaction of its own: the inbox is the plumbing under the
handlers, not part of any use case's transaction. Two run in the caller's transaction:
`store` when given its connection (the runner checks the batch's senders in the same
transaction), and `mark_done_in` (the runner commits the updates' FSM changes with
their done marks, storage/done_marks.py).

Several instances share one inbox. A row is claimed by the instance that stored it
(`claimed_by`, until `claimed_until`), which renews its claims while it lives. Only a
row whose claim ran out (its instance died) is taken up by another, or by the next
start: on PostgreSQL the candidates are locked with SELECT … FOR UPDATE SKIP LOCKED and
the conditional UPDATE … RETURNING decides (SQLite has one writer at a time), so two
instances starting at once never both take the same row.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    Connection,
    Executable,
    Table,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from storage.engine import engine_of, upsert_insert
from storage.models import InboxUpdate

# Done rows kept for dedupe: a redelivery comes within minutes (a webhook answer lost,
# a restart), never after a day or ten thousand later updates.
KEEP_DONE = 10_000
KEEP_DONE_FOR = timedelta(days=1)
PRUNE_BATCH = 1_000  # rows deleted per transaction (see Inbox.prune)


# Storing and marking done run for every update: built once, not per call.
INBOX: Table = InboxUpdate.__table__  # type: ignore[assignment]
_MARK_DONE = (
    update(INBOX)
    .where(INBOX.c.update_id == bindparam("done_id"))
    .values(done_at=bindparam("done_at"))
)


@functools.cache
def _store_statement(dialect: str) -> Executable:
    """Insert rows (a row of parameters each) unless stored already; the new ids back."""
    insert = upsert_insert(dialect)(INBOX)
    return insert.on_conflict_do_nothing(  # type: ignore[no-any-return]
        index_elements=[INBOX.c.update_id]
    ).returning(INBOX.c.update_id)


@dataclass(frozen=True)
class Incoming:
    """An update as it is to be stored (its payload already redacted when needed)."""

    update_id: int
    payload: str
    redacted: bool = False
    chat_id: int | None = None
    message_id: int | None = None


@dataclass(frozen=True)
class Stored:
    """An update in the inbox not yet done."""

    update_id: int
    payload: str
    redacted: bool
    chat_id: int | None
    message_id: int | None
    started: bool = False
    state_at_start: str | None = None
    received_at: datetime | None = None


def _stored(row: InboxUpdate) -> Stored:
    return Stored(
        row.update_id,
        row.payload,
        row.redacted,
        row.chat_id,
        row.message_id,
        started=row.started_at is not None,
        state_at_start=row.state_at_start,
        received_at=row.received_at,
    )


class Inbox:
    """Store, claim, finish and prune inbox rows; dedupe by update_id.

    `owner` names this instance in the claims; `lease` is how long a claim lasts
    unless renewed.
    """

    def __init__(
        self,
        session_pool: async_sessionmaker[AsyncSession],
        *,
        owner: str = "",
        lease: timedelta = timedelta(seconds=6),
    ) -> None:
        self._pool = session_pool
        self._engine = engine_of(session_pool)
        self.owner = owner
        self.lease = lease

    async def store(
        self,
        items: Sequence[Incoming],
        now: datetime,
        *,
        connection: AsyncConnection | None = None,
    ) -> set[int]:
        """Store the updates not seen before; returns their ids.

        Committed here, or with `connection` in the caller's transaction (which the
        caller commits). A redelivered update (its id already stored) is left out of the
        result, so it is handled once, even when two webhook requests carry it at the
        same moment.
        """
        if not items:
            return set()
        if connection is None:
            async with self._engine.begin() as own:
                return await self.store(items, now, connection=own)
        rows = [
            {
                "update_id": item.update_id,
                "payload": item.payload,
                "redacted": item.redacted,
                "chat_id": item.chat_id,
                "message_id": item.message_id,
                "received_at": now,
                "claimed_by": self.owner,
                "claimed_until": now + self.lease,
            }
            for item in items
        ]
        statement = _store_statement(connection.dialect.name)
        return set((await connection.execute(statement, rows)).scalars())

    async def claim_lapsed(self, now: datetime, *, every: bool = False) -> list[Stored]:
        """Claim the rows not done whose claim ran out (or never was), oldest first.

        every=True: every row not done, whoever holds it (the sole instance's start:
        any claim is a dead predecessor's, however long it still runs).
        """
        lapsed = (
            InboxUpdate.done_at.is_(None)
            if every
            else and_(
                InboxUpdate.done_at.is_(None),
                or_(InboxUpdate.claimed_until.is_(None), InboxUpdate.claimed_until < now),
            )
        )
        async with self._pool() as session:
            candidates = await session.execute(
                select(InboxUpdate.update_id)
                .where(lapsed)
                .order_by(InboxUpdate.update_id)
                .with_for_update(skip_locked=True)
            )
            ids = list(candidates.scalars())
            if not ids:
                await session.rollback()
                return []
            claimed = await session.execute(
                update(InboxUpdate)
                .where(InboxUpdate.update_id.in_(ids), lapsed)
                .values(claimed_by=self.owner, claimed_until=now + self.lease)
                .returning(InboxUpdate)
                .execution_options(synchronize_session=False)
            )
            rows = sorted((_stored(row) for row in claimed.scalars()), key=lambda r: r.update_id)
            await session.commit()
        return rows

    async def next_lapse(self, now: datetime) -> datetime | None:
        """When the soonest live claim of another instance on an unfinished row runs out."""
        async with self._pool() as session:
            moment = await session.scalar(
                select(func.min(InboxUpdate.claimed_until)).where(
                    InboxUpdate.done_at.is_(None),
                    InboxUpdate.claimed_by != self.owner,
                    InboxUpdate.claimed_until >= now,
                )
            )
        # SQLite gives back naive datetimes; every moment stored here is UTC.
        if moment is None or moment.tzinfo:
            return moment
        return moment.replace(tzinfo=UTC)

    async def renew(self, now: datetime) -> None:
        """Extend this instance's claims on the rows it has not finished."""
        await self._set_claims(now + self.lease)

    async def release(self) -> None:
        """Give up this instance's unfinished rows (stopping): any instance may take them."""
        await self._set_claims(None)

    async def _set_claims(self, until: datetime | None) -> None:
        async with self._pool() as session:
            await session.execute(
                update(InboxUpdate)
                .where(InboxUpdate.claimed_by == self.owner, InboxUpdate.done_at.is_(None))
                .values(claimed_until=until)
            )
            await session.commit()

    async def mark_started(self, update_id: int, state: str | None, now: datetime) -> None:
        """Record that handling began, and the sender's FSM state at that moment."""
        async with self._pool() as session:
            await session.execute(
                update(InboxUpdate)
                .where(InboxUpdate.update_id == update_id)
                .values(started_at=now, state_at_start=state)
            )
            await session.commit()

    def mark_done_in(
        self, connection: Connection, update_ids: Sequence[int], now: datetime
    ) -> None:
        """Mark the updates done in the caller's transaction (storage/done_marks.py)."""
        connection.execute(_MARK_DONE, [{"done_id": i, "done_at": now} for i in update_ids])

    async def next_offset(self) -> int | None:
        """The getUpdates offset that confirms everything stored, or None for an empty inbox."""
        async with self._pool() as session:
            newest = (await session.execute(select(func.max(InboxUpdate.update_id)))).scalar()
        return None if newest is None else int(newest) + 1

    async def prune(self, now: datetime) -> int:
        """Delete done rows older than KEEP_DONE_FOR or beyond the newest KEEP_DONE.

        In batches of PRUNE_BATCH rows, each its own short transaction: at peak the ten
        minutes between prunes bring some 20,000 rows, and one statement deleting them
        all would keep other writers, and on SQLite the event loop
        (storage/sqlite_driver.py), waiting some 40 ms.
        """
        async with self._engine.connect() as connection:
            cutoff_id = (
                await connection.execute(
                    select(INBOX.c.update_id)
                    .where(INBOX.c.done_at.is_not(None))
                    .order_by(INBOX.c.update_id.desc())
                    .offset(KEEP_DONE)
                    .limit(1)
                )
            ).scalar()
            newest = (await connection.execute(select(func.max(INBOX.c.update_id)))).scalar()
        old = INBOX.c.done_at < now - KEEP_DONE_FOR
        condition = old if cutoff_id is None else old | (INBOX.c.update_id <= cutoff_id)
        batch = (
            select(INBOX.c.update_id)
            .where(
                INBOX.c.done_at.is_not(None),
                # the newest row stays: it is where polling resumes after a restart
                INBOX.c.update_id != newest,
                condition,
            )
            .limit(PRUNE_BATCH)
        )
        removed = 0
        while True:
            async with self._engine.begin() as connection:
                result = await connection.execute(delete(INBOX).where(INBOX.c.update_id.in_(batch)))
            removed += result.rowcount
            if result.rowcount < PRUNE_BATCH:
                return removed
