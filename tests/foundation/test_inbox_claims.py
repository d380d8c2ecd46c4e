"""Several instances share the inbox: a row is handled by the instance that claimed it,
and taken up by another only when that claim ran out (storage/inbox.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.engine import engine_of, in_transaction
from storage.inbox import Inbox, Incoming

LEASE = timedelta(seconds=60)
T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def instance(pool: async_sessionmaker[AsyncSession], name: str) -> Inbox:
    return Inbox(pool, owner=name, lease=LEASE)


async def store(inbox: Inbox, ids: range, now: datetime) -> None:
    await inbox.store([Incoming(i, f'{{"update_id": {i}}}') for i in ids], now)


async def test_a_live_instance_keeps_its_rows(pool: async_sessionmaker[AsyncSession]) -> None:
    first, second = instance(pool, "first"), instance(pool, "second")
    await store(first, range(1, 6), T0)
    assert await second.claim_lapsed(T0 + timedelta(seconds=30)) == []
    # `first` lives and renews: its rows are still not anyone else's after a lease.
    await first.renew(T0 + timedelta(seconds=50))
    assert await second.claim_lapsed(T0 + timedelta(seconds=70)) == []
    assert await second.next_lapse(T0 + timedelta(seconds=70)) == T0 + timedelta(seconds=110)


async def test_instances_starting_at_once_share_a_dead_ones_rows(
    pool: async_sessionmaker[AsyncSession],
) -> None:
    await store(instance(pool, "dead"), range(1, 41), T0)
    later = T0 + LEASE + timedelta(seconds=1)
    starting = [instance(pool, f"new-{n}") for n in range(3)]
    taken = await asyncio.gather(*(inbox.claim_lapsed(later) for inbox in starting))
    ids = [row.update_id for rows in taken for row in rows]
    assert sorted(ids) == list(range(1, 41)), "an update was lost or taken twice"
    for rows in taken:
        assert [r.update_id for r in rows] == sorted(r.update_id for r in rows)  # oldest first
    # Claimed now, by live instances: nothing is left for a fourth one.
    assert await instance(pool, "fourth").claim_lapsed(later) == []


async def test_finished_and_released_rows(pool: async_sessionmaker[AsyncSession]) -> None:
    stopping, next_one = instance(pool, "stopping"), instance(pool, "next")
    await store(stopping, range(1, 4), T0)
    engine = engine_of(pool)
    await in_transaction(engine, lambda c: stopping.mark_done_in(c, [1], T0))
    await stopping.release()  # a clean stop gives up what it did not finish
    rows = await next_one.claim_lapsed(T0 + timedelta(seconds=1))
    assert [r.update_id for r in rows] == [2, 3]


async def test_a_sole_instance_takes_every_unfinished_row_at_start(
    pool: async_sessionmaker[AsyncSession],
) -> None:
    """SQLite has one instance: a claim it finds at start is a dead predecessor's, even one
    taken a second ago. Waiting for it while handling the chat's newer updates would
    handle them out of order (a value typed into the card before the one it answers)."""
    killed = instance(pool, "killed")
    await store(killed, range(1, 3), T0)
    assert [r.update_id for r in await killed.claim_lapsed(T0, every=True)] == [1, 2]
    await store(killed, range(3, 4), T0 + timedelta(seconds=1))
    restarted = instance(pool, "restarted")
    later = T0 + timedelta(seconds=2)  # well within the killed one's claims
    assert await restarted.claim_lapsed(later) == []
    rows = await restarted.claim_lapsed(later, every=True)
    assert [r.update_id for r in rows] == [1, 2, 3]
