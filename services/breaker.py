"""A circuit breaker for billing: stop hammering a service that is down.

closed     calls go through; `threshold` transient failures in a row open it.
open       no call goes through until `cooldown` has passed (longer if the
           service asked for it with Retry-After); then it is half-open.
half-open  one probe call goes through: success closes the breaker, failure
           opens it again with a doubled cooldown (up to `max_cooldown`).

One breaker per process: a second instance learns the same on its own. Only
transient failures count (billing down, timeouts, 5xx); a refusal of the data
proves billing is up and counts as a success.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum

log = logging.getLogger(__name__)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Decides whether a billing call may be made now (see the module docstring)."""

    def __init__(
        self,
        *,
        threshold: int = 5,
        cooldown: float = 30.0,
        max_cooldown: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = max(1, threshold)
        self.cooldown = cooldown
        self.max_cooldown = max(cooldown, max_cooldown)
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._open_for = cooldown
        self._probe_out = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at < self._open_for:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    @property
    def is_open(self) -> bool:
        """True while billing is considered down (open, or half-open with a probe out)."""
        state = self.state
        return state is BreakerState.OPEN or (state is BreakerState.HALF_OPEN and self._probe_out)

    def seconds_until_probe(self) -> float:
        """How long until a call may go through again (0 when it may now)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self._open_for - self._clock())

    def allow(self) -> bool:
        """May a call be made now? In half-open state, only one probe at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN or self._probe_out:
            return False
        self._probe_out = True
        return True

    def record_success(self) -> None:
        """Billing answered: close the breaker."""
        if self._opened_at is not None:
            log.info("Billing answers again: circuit breaker closed")
        self._failures = 0
        self._opened_at = None
        self._open_for = self.cooldown
        self._probe_out = False

    def record_failure(self, retry_after: float | None = None, *, probe: bool = False) -> None:
        """Billing did not answer (or answered 5xx); `retry_after` if it asked to wait.

        probe: the call was the half-open probe (allowed by `allow()` in that state).
        A call that started before the breaker opened and fails later changes nothing.
        """
        if probe:
            self._probe_out = False
            self._open_for = min(self.max_cooldown, self._open_for * 2)
        elif self._opened_at is not None:
            return
        else:
            self._failures += 1
            if self._failures < self.threshold:
                return
            self._open_for = self.cooldown
        if retry_after is not None:
            self._open_for = max(self._open_for, min(retry_after, self.max_cooldown))
        self._opened_at = self._clock()
        log.warning("Billing is not answering: circuit breaker open for %.1f s", self._open_for)

    def release_probe(self) -> None:
        """A probe was allowed but not made (nothing to send): let the next one go."""
        self._probe_out = False
