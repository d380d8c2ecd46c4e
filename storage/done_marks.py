"""Done marks, committed in groups.

An update is done when its inbox row's done mark is committed, together with the
FSM changes its handler made (storage/fsm.py); until then a restart handles it
again. Each update's task waits here until its mark is committed. While one group's
transaction is being written, the marks of the updates finishing meanwhile gather,
and the next transaction takes them all: under load one commit serves several
updates, not one each. Groups are written one after another, in the order their
marks came, so a user's later FSM record never loses to an earlier one.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import in_transaction
from storage.fsm import FsmChanges, SqlStorage
from storage.inbox import Inbox


@dataclass(frozen=True)
class _Mark:
    update_id: int
    changes: FsmChanges | None
    committed: asyncio.Future[None]


class DoneMarks:
    """The update runner's done marks; `fsm` is the SQL FSM storage, if the bot uses it."""

    def __init__(self, engine: AsyncEngine, inbox: Inbox, fsm: SqlStorage | None) -> None:
        self._engine = engine
        self._inbox = inbox
        self._fsm = fsm
        self._gathering: list[_Mark] = []
        self._writer: asyncio.Task[None] | None = None
        self.transactions = 0  # for tests: how many groups were committed

    async def mark(self, update_id: int, changes: FsmChanges | None) -> None:
        """Return once the update's done mark and FSM changes are committed.

        Raises what the group's transaction raised: the update is then not done.
        """
        committed = asyncio.get_running_loop().create_future()
        self._gathering.append(_Mark(update_id, changes, committed))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_groups(), name="inbox-done-marks")
        await committed

    async def _write_groups(self) -> None:
        group: list[_Mark] = []
        try:
            while self._gathering:
                group, self._gathering = self._gathering, []
                try:
                    await in_transaction(self._engine, functools.partial(self._write, group=group))
                except Exception as exc:
                    for mark in group:
                        if not mark.committed.done():
                            mark.committed.set_exception(exc)
                else:
                    self.transactions += 1
                    for mark in group:
                        if not mark.committed.done():
                            mark.committed.set_result(None)
        except BaseException:  # cancelled with the event loop: nothing more is written
            for mark in [*group, *self._gathering]:
                mark.committed.cancel()
            raise
        finally:
            self._writer = None

    def _write(self, connection: Connection, group: Sequence[_Mark]) -> None:
        if self._fsm is not None:
            self._fsm.save(connection, [m.changes for m in group if m.changes is not None])
        self._inbox.mark_done_in(connection, [m.update_id for m in group], datetime.now(UTC))
