"""The outbox worker: sends written batches to billing until each is settled.

«Отправить» only writes a batch (services.submission.create_batch) and wakes
the worker. The worker leases due rows (a lease another worker or instance
cannot also take), sends each with its own idempotency key, retries transient
failures with backoff and jitter (or after billing's Retry-After), and settles
it SENT or FAILED. A circuit breaker stops it hammering a billing that is down.

After a batch is settled, the hooks run (e.g. the group summary) and the
inspector is told: the handler that is still waiting shows the result on its
card, otherwise `notify` sends a message. `notified_at` is written only after
that, so a crash at any point is repaired at the next start: a leased row whose
lease ran out is taken up again (sent again with the same key: billing answers
a replay with its first answer), and a settled row nobody was told about is
announced. Hooks may therefore run twice after a crash: they must be idempotent.

Nothing here imports aiogram: `notify` is given by the Telegram edge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing_client.base import Billing
from services import submission
from services.breaker import BreakerState, CircuitBreaker
from services.credentials import CredentialsProvider
from services.submission import BatchResult, RetryPolicy
from storage.models import Submission, SubmissionStatus

log = logging.getLogger(__name__)

Notify = Callable[[BatchResult], Awaitable[None]]
FinishedHook = Callable[[int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class OutboxPolicy:
    """Timings of the worker (from settings; tests shrink them)."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # A lease is renewed every third of it while the row is worked on, so it only
    # runs out when its worker is gone; then the row is taken up again.
    lease: float = 60.0
    concurrency: int = 4
    # Without a wake-up the worker still looks at the table this often.
    poll_interval: float = 30.0
    # A settled batch handed to a waiting handler is announced by message if the
    # handler has not confirmed it within this time (it crashed or failed).
    handover_grace: float = 60.0
    # A failed notification (Telegram down) is tried again after this long.
    notify_retry: float = 30.0
    # How long stop() lets sends in flight finish before cancelling them.
    stop_timeout: float = 3.0


def _worker_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _now() -> datetime:
    return datetime.now(UTC)


class Outbox:
    """One worker per process; `start()` it with a notifier, `stop()` it at shutdown."""

    def __init__(
        self,
        session_pool: async_sessionmaker[AsyncSession],
        billing: Billing,
        credentials: CredentialsProvider,
        *,
        policy: OutboxPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        on_finished: Sequence[FinishedHook] = (),
        worker_id: str | None = None,
    ) -> None:
        self.session_pool = session_pool
        self.billing = billing
        self.credentials = credentials
        self.policy = policy or OutboxPolicy()
        self.breaker = breaker or CircuitBreaker()
        # Called with the id of every batch that was settled (SENT or FAILED),
        # before the inspector is told; e.g. the group summary.
        self.on_finished: list[FinishedHook] = list(on_finished)
        self.worker_id = worker_id or _worker_id()
        self._notify: Notify | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._running: dict[int, asyncio.Task[None]] = {}
        # Handlers waiting for a batch: (their chat, their future) per batch id.
        self._waiters: dict[int, list[tuple[int, asyncio.Future[BatchResult]]]] = {}
        self._probes: set[int] = set()

    # -- lifecycle -------------------------------------------------------------------

    def start(self, notify: Notify) -> None:
        """Start working in the background (at once: rows a crash left are taken up)."""
        if self._task is not None and not self._task.done():
            return
        self._notify = notify
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="outbox")
        log.info("Outbox worker %s started", self.worker_id)

    async def stop(self) -> None:
        """Let sends in flight finish briefly, then cancel them and give back leases."""
        self._stopping = True
        self._wake.set()
        if self._running:
            await asyncio.wait(list(self._running.values()), timeout=self.policy.stop_timeout)
        leftover = list(self._running)
        for task in list(self._running.values()):
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._running.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if leftover:
            # Due again at once: the next start (or another instance) takes them up
            # without waiting for the lease to run out.
            with contextlib.suppress(Exception):
                await submission.release(self.session_pool, self.worker_id, leftover)
        for waiters in self._waiters.values():
            for _, waiter in waiters:
                waiter.cancel()
        self._waiters.clear()
        log.info("Outbox worker %s stopped", self.worker_id)

    def wake(self) -> None:
        """Look for due rows now (a batch was written or hurried)."""
        self._wake.set()

    @property
    def billing_down(self) -> bool:
        """True while the circuit breaker holds billing for down."""
        return self.breaker.is_open

    # -- the handler's side -------------------------------------------------------------

    async def wait_for(
        self, ids: Iterable[int], seconds: float, *, chat_id: int
    ) -> dict[int, BatchResult]:
        """Wake the worker and wait up to `seconds` for these batches to settle.

        A settled batch returned here is the caller's to show; the caller then
        calls `shown()`. A batch whose attempt failed transiently comes back at
        once, still PENDING. Batches pending at the end are announced by message
        when they settle (to the chat of the inspector who wrote the batch, unless
        it was shown there).
        """
        waiting: dict[int, asyncio.Future[BatchResult]] = {}
        loop = asyncio.get_running_loop()
        for submission_id in ids:
            future: asyncio.Future[BatchResult] = loop.create_future()
            self._waiters.setdefault(submission_id, []).append((chat_id, future))
            waiting[submission_id] = future
        self.wake()
        try:
            if waiting:
                await asyncio.wait(waiting.values(), timeout=seconds)
        finally:
            for submission_id, future in waiting.items():
                left = [w for w in self._waiters.get(submission_id, []) if w[1] is not future]
                if left:
                    self._waiters[submission_id] = left
                else:
                    self._waiters.pop(submission_id, None)
                if not future.done():
                    future.cancel()
        return {
            submission_id: future.result()
            for submission_id, future in waiting.items()
            if future.done() and not future.cancelled()
        }

    def _hand_over(self, result: BatchResult) -> bool:
        """Give the result to every handler waiting for it; True if one is in its chat."""
        owner_waits = False
        for chat_id, waiter in self._waiters.pop(result.submission_id, []):
            if not waiter.done():
                waiter.set_result(result)
                owner_waits = owner_waits or chat_id == result.chat_id
        return owner_waits

    async def shown(self, ids: Iterable[int], *, chat_id: int) -> None:
        """The handler showed these settled batches in this chat."""
        await submission.mark_notified(self.session_pool, ids, now=_now(), chat_id=chat_id)

    # -- the loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        renewing = asyncio.create_task(self._renew_leases(), name="outbox-leases")
        failures = 0
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    claimed = await self._claim()
                    for submission_id in claimed:
                        self._spawn(submission_id)
                    if claimed and len(self._running) < self.policy.concurrency:
                        continue
                    idle = await self._idle_time()
                    failures = 0
                except Exception:
                    # The database is unreachable or locked: the worker never dies.
                    failures += 1
                    log.exception("Outbox: could not read due batches")
                    idle = min(30.0, 0.5 * 2**failures)
                await self._sleep(idle)
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(0.01, seconds))

    async def _claim(self) -> list[int]:
        free = self.policy.concurrency - len(self._running)
        if free <= 0:
            return []
        now = _now()
        lease = timedelta(seconds=self.policy.lease)
        # Settled rows first: telling the inspector needs no billing.
        claimed = await submission.claim_due(
            self.session_pool, self.worker_id, now=now, lease=lease, limit=free, pending=False
        )
        free -= len(claimed)
        if free <= 0:
            return claimed
        state = self.breaker.state
        probe = False
        if state is BreakerState.CLOSED:
            sendable = free
        elif state is BreakerState.HALF_OPEN and self.breaker.allow():
            sendable, probe = 1, True  # one batch tests whether billing is back
        else:
            sendable = 0
        sending: list[int] = []
        try:
            sending = await submission.claim_due(
                self.session_pool,
                self.worker_id,
                now=now,
                lease=lease,
                limit=sendable,
                pending=True,
            )
        finally:
            if probe:
                if sending:
                    self._probes.add(sending[0])
                else:
                    self.breaker.release_probe()
        return claimed + sending

    async def _idle_time(self) -> float:
        """Seconds until the next row is due (pending ones only while billing may be called)."""
        wait = self.policy.poll_interval
        if len(self._running) >= self.policy.concurrency:
            return wait  # a finishing send wakes the loop
        now = _now()
        moments = [await submission.next_due(self.session_pool, pending=False)]
        if self.breaker.is_open:
            wait = min(wait, self.breaker.seconds_until_probe() or wait)
        else:
            moments.append(await submission.next_due(self.session_pool, pending=True))
        for moment in moments:
            if moment is not None:
                wait = min(wait, (moment - now).total_seconds())
        return max(0.05, wait)

    def _spawn(self, submission_id: int) -> None:
        task = asyncio.create_task(self._process(submission_id), name=f"outbox-{submission_id}")
        self._running[submission_id] = task

        def done(_: asyncio.Task[None]) -> None:
            self._running.pop(submission_id, None)
            self._wake.set()

        task.add_done_callback(done)

    async def _renew_leases(self) -> None:
        period = max(0.05, self.policy.lease / 3)
        while True:
            await asyncio.sleep(period)
            if not self._running:
                continue
            try:
                await submission.renew(
                    self.session_pool,
                    self.worker_id,
                    list(self._running),
                    until=_now() + timedelta(seconds=self.policy.lease),
                )
            except Exception:
                log.exception("Outbox: could not renew leases")

    # -- one row -----------------------------------------------------------------------

    async def _process(self, submission_id: int) -> None:
        try:
            async with self.session_pool() as session:
                row = await session.get(Submission, submission_id)
                status = row.status if row is not None else None
            if status is None:
                return
            if status == SubmissionStatus.PENDING and not await self._send(submission_id):
                return
            await self._finish(submission_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            if submission_id in self._probes:
                self._probes.discard(submission_id)
                self.breaker.release_probe()
            log.exception("Outbox: batch %s hit an unexpected error; will retry", submission_id)
            with contextlib.suppress(Exception):
                await self._release(submission_id, self.policy.notify_retry)

    async def _send(self, submission_id: int) -> bool:
        """One attempt; True when the batch is settled and the inspector is to be told."""
        probe = submission_id in self._probes
        self._probes.discard(submission_id)
        if not probe and self.breaker.state is not BreakerState.CLOSED:
            # It opened since this row was leased: only a probe may go.
            probe = self.breaker.allow()
            if not probe:
                await self._release(submission_id, self.breaker.seconds_until_probe())
                return False
        try:
            outcome = await submission.attempt(
                self.session_pool,
                self.billing,
                self.credentials,
                submission_id,
                worker_id=self.worker_id,
                policy=self.policy.retry,
                now=_now(),
            )
        except BaseException:
            if probe:
                self.breaker.release_probe()  # no verdict on billing: let another probe go
            raise
        if not outcome.sent:
            self.breaker.release_probe()
            return False
        if outcome.transient is not None:
            self.breaker.record_failure(
                getattr(outcome.transient, "retry_after", None), probe=probe
            )
            # No need to keep the inspector waiting: say now that it will come.
            self._hand_over(outcome.result)
        else:
            # Billing answered (even a refusal): it is up.
            self.breaker.record_success()
        return outcome.result.status != SubmissionStatus.PENDING

    async def _finish(self, submission_id: int) -> None:
        """Run the hooks and tell the inspector; mark the row notified after that."""
        async with self.session_pool() as session:
            result = await submission.describe(session, submission_id)
        for hook in self.on_finished:
            try:
                await hook(submission_id)
            except Exception:
                log.exception("Outbox: a hook failed for batch %s", submission_id)
        if self._hand_over(result):
            # The handler shows it and calls shown(); if it never does, the row
            # comes due again after the grace and is announced by message.
            await self._release(submission_id, self.policy.handover_grace)
            return
        assert self._notify is not None
        try:
            await self._notify(result)
        except Exception:
            log.exception("Outbox: could not tell the inspector about batch %s", submission_id)
            await self._release(submission_id, self.policy.notify_retry)
            return
        await submission.mark_notified(self.session_pool, [submission_id], now=_now())

    async def _release(self, submission_id: int, after: float) -> None:
        """Give the row back, due again in `after` seconds."""
        await submission.release(
            self.session_pool,
            self.worker_id,
            [submission_id],
            due_at=_now() + timedelta(seconds=after),
        )
