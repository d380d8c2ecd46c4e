"""Done marks (storage/done_marks.py): the updates that finish together are committed
together, each with its FSM changes; a failed commit leaves all of them not done."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from aiogram.fsm.storage.base import StorageKey
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.done_marks import DoneMarks
from storage.engine import create_engine, create_session_pool
from storage.fsm import FsmChanges, SqlStorage
from storage.inbox import Inbox, Incoming
from storage.migrate import upgrade_database
from storage.models import FsmRecord, InboxUpdate
from tests.harness.databases import Databases

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


@dataclass
class Runner:
    engine: AsyncEngine
    inbox: Inbox
    fsm: SqlStorage
    done: DoneMarks

    async def finish(self, update_id: int, chat_id: int, position: int) -> FsmChanges:
        """An update's handler ran: it moved the chat's card to `position`."""
        key = StorageKey(bot_id=42, chat_id=chat_id, user_id=chat_id)
        with self.fsm.collecting() as changes:
            await self.fsm.update_data(key, {"position": position})
        return changes

    async def done_ids(self) -> set[int]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(InboxUpdate.update_id).where(InboxUpdate.done_at.is_not(None))
            )
            return set(rows.scalars())

    async def stored_data(self) -> dict[str, str]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(select(FsmRecord.key, FsmRecord.data))
            return {key: data for key, data in rows}


@pytest.fixture
async def runner(databases: Databases) -> AsyncIterator[Runner]:
    engine = create_engine(databases.bot)
    await upgrade_database(engine)
    pool = create_session_pool(engine)
    inbox = Inbox(pool, owner="test")
    await inbox.store([Incoming(i, f'{{"update_id": {i}}}') for i in range(1, 6)], NOW)
    fsm = SqlStorage(pool)
    try:
        yield Runner(engine, inbox, fsm, DoneMarks(engine, inbox, fsm))
    finally:
        await engine.dispose()


async def test_updates_finishing_together_are_marked_done_in_one_commit(
    runner: Runner,
) -> None:
    first = await runner.finish(1, chat_id=1001, position=3)
    second = await runner.finish(2, chat_id=1002, position=7)
    # The same chat again: its later record is the one stored.
    third = await runner.finish(3, chat_id=1001, position=4)
    await asyncio.gather(
        runner.done.mark(1, first), runner.done.mark(2, second), runner.done.mark(3, third)
    )
    assert runner.done.transactions == 1
    assert await runner.done_ids() == {1, 2, 3}
    assert sorted((await runner.stored_data()).values()) == [
        '{"position": 4}',
        '{"position": 7}',
    ]

    # One that comes later gets its own commit; one without FSM changes is marked too.
    await runner.done.mark(4, None)
    assert runner.done.transactions == 2
    assert await runner.done_ids() == {1, 2, 3, 4}


async def test_a_mark_that_comes_during_a_commit_goes_into_the_next(runner: Runner) -> None:
    writing = asyncio.Event()

    def commit_seen(*_args: Any) -> None:
        writing.set()

    event.listen(runner.engine.sync_engine, "commit", commit_seen)
    first = asyncio.create_task(runner.done.mark(1, None))
    await asyncio.wait_for(writing.wait(), 10)
    # The first group's commit is under way: these two gather for the next one.
    await asyncio.gather(runner.done.mark(2, None), runner.done.mark(3, None), first)
    assert runner.done.transactions == 2
    assert await runner.done_ids() == {1, 2, 3}


async def test_a_failed_commit_leaves_every_update_of_its_group_not_done(
    runner: Runner,
) -> None:
    class DiskFull(Exception):
        pass

    def fail(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE INBOX_UPDATES"):
            raise DiskFull

    changes = await runner.finish(1, chat_id=1001, position=3)
    event.listen(runner.engine.sync_engine, "before_cursor_execute", fail)
    results = await asyncio.gather(
        runner.done.mark(1, changes), runner.done.mark(2, None), return_exceptions=True
    )
    assert [type(r) for r in results] == [DiskFull, DiskFull]
    assert await runner.done_ids() == set()
    assert await runner.stored_data() == {}  # the FSM change rolled back with the marks

    # The next marks are written again once the database is back.
    event.remove(runner.engine.sync_engine, "before_cursor_execute", fail)
    await runner.done.mark(1, changes)
    assert await runner.done_ids() == {1}
    assert list((await runner.stored_data()).values()) == ['{"position": 3}']
