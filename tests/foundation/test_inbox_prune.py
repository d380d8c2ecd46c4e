"""Pruning the inbox (storage/inbox.py): done rows go after a day or beyond the newest
KEEP_DONE, a few at a time; unfinished rows and the newest row stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage import inbox as inbox_module
from storage.engine import engine_of, in_transaction
from storage.inbox import INBOX, Inbox, Incoming

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


async def inbox_with(pool: async_sessionmaker[AsyncSession], stored: range, done: range) -> Inbox:
    inbox = Inbox(pool, owner="bot")
    await inbox.store([Incoming(i, f'{{"update_id": {i}}}') for i in stored], T0)
    await in_transaction(engine_of(pool), lambda c: inbox.mark_done_in(c, list(done), T0))
    return inbox


async def left(pool: async_sessionmaker[AsyncSession]) -> list[int]:
    async with engine_of(pool).connect() as connection:
        rows = await connection.execute(select(INBOX.c.update_id).order_by(INBOX.c.update_id))
        return list(rows.scalars())


def deletes_counted(pool: async_sessionmaker[AsyncSession]) -> list[str]:
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            statements.append(statement)

    event.listen(engine_of(pool).sync_engine, "before_cursor_execute", seen)
    return statements


async def test_a_days_old_rows_go_in_batches_and_the_rest_stay(
    pool: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox_module, "PRUNE_BATCH", 4)
    inbox = await inbox_with(pool, range(1, 31), done=range(1, 21))
    deletes = deletes_counted(pool)
    assert await inbox.prune(T0 + timedelta(days=2)) == 20
    assert await left(pool) == list(range(21, 31))  # not done: still to be handled
    assert len(deletes) == 6  # five full batches, then one that finds nothing more


async def test_beyond_the_newest_keep_done_rows_go_and_the_newest_row_stays(
    pool: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox_module, "PRUNE_BATCH", 3)
    monkeypatch.setattr(inbox_module, "KEEP_DONE", 5)
    inbox = await inbox_with(pool, range(1, 21), done=range(1, 21))
    assert await inbox.prune(T0 + timedelta(hours=1)) == 15
    assert await left(pool) == list(range(16, 21))
    # A day later all are old, but polling resumes after the newest: it stays.
    assert await inbox.prune(T0 + timedelta(days=2)) == 4
    assert await left(pool) == [20]
