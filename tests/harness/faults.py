"""Fault injection knobs of the fake Bot API server, changeable while the bot runs.

    tg.faults.all.p_429 = 0.3                  # 30 % of calls answer 429 (retry_after 1 s)
    tg.faults.all.p_5xx = 0.1                  # 10 % answer 502 Bad Gateway
    tg.faults.method("sendMessage").p_5xx = 1  # per-method rule, replaces `all` for it
    tg.faults.group_limit = RateLimit(20, 60)  # Telegram's 20 messages a minute per group
    tg.faults.blocked_users.add(1001)          # 403 "bot was blocked by the user"
    tg.faults.reset()

A rule only ever makes a call fail before it takes effect, except `p_lost_response`,
which applies the call (the user sees the message) and then answers 502: the bot
cannot know whether it went through, the case that makes naive retries send twice.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

# Methods that put a message into a chat: the ones Telegram's flood limits count.
MESSAGE_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendAudio",
        "sendVideo",
        "sendAnimation",
        "sendVoice",
        "sendVideoNote",
        "sendSticker",
        "sendLocation",
        "sendContact",
        "sendMediaGroup",
        "copyMessage",
        "forwardMessage",
    }
)


@dataclass
class FaultRule:
    """What fraction of calls fail, and how."""

    p_429: float = 0.0
    retry_after: int = 1  # seconds, an integer like Telegram's
    p_5xx: float = 0.0
    status_5xx: int = 502
    # Telegram's front end sometimes answers 5xx with an nginx HTML page, not JSON;
    # aiogram then raises ClientDecodeError instead of TelegramServerError.
    html_5xx: bool = False
    p_lost_response: float = 0.0
    delay: float = 0.0  # seconds of added latency before answering

    def is_active(self) -> bool:
        return bool(self.p_429 or self.p_5xx or self.p_lost_response or self.delay)


@dataclass
class RateLimit:
    """At most `max_calls` message-sending calls per chat in any `per_seconds` window."""

    max_calls: int
    per_seconds: float


class SlidingWindow:
    """Times of accepted calls for one chat, to answer 429 when a RateLimit is exceeded."""

    def __init__(self) -> None:
        self.times: deque[float] = deque()

    def retry_after(self, limit: RateLimit, now: float) -> float:
        """0 when a call is allowed now, else seconds until the oldest call leaves the window."""
        while self.times and now - self.times[0] >= limit.per_seconds:
            self.times.popleft()
        if len(self.times) < limit.max_calls:
            return 0.0
        return self.times[0] + limit.per_seconds - now


@dataclass
class Faults:
    """Every fault knob; read on each API call, so tests may change them at any time."""

    all: FaultRule = field(default_factory=FaultRule)
    methods: dict[str, FaultRule] = field(default_factory=dict)
    # `all` leaves these alone (a per-method rule still applies): failing getUpdates only
    # slows the bot's polling backoff, which is rarely what a test is about.
    exempt: set[str] = field(default_factory=lambda: {"getUpdates"})
    group_limit: RateLimit | None = None  # Telegram: RateLimit(20, 60)
    private_limit: RateLimit | None = None  # Telegram: about RateLimit(1, 1), bursts tolerated
    global_limit: RateLimit | None = None  # Telegram: RateLimit(30, 1) over all chats
    limited_methods: frozenset[str] = MESSAGE_METHODS
    blocked_users: set[int] = field(default_factory=set)
    # Inside an announced retry_after window, the same method to the same chat gets 429
    # again (with the remaining time), as Telegram's flood control does.
    enforce_retry_after: bool = True
    # A call this much earlier than retry_after still counts as patient (clock jitter).
    early_tolerance: float = 0.01
    seed: int | None = None
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.seed is not None:
            self.rng.seed(self.seed)

    def method(self, name: str) -> FaultRule:
        """The rule for one method (created on first use); it replaces `all` for that method."""
        return self.methods.setdefault(name, FaultRule())

    def rule_for(self, method: str) -> FaultRule | None:
        if method in self.methods:
            return self.methods[method]
        if method in self.exempt:
            return None
        return self.all

    def reset(self) -> None:
        """No faults at all (blocked users included)."""
        self.all = FaultRule()
        self.methods.clear()
        self.group_limit = self.private_limit = self.global_limit = None
        self.blocked_users.clear()

    def roll(self, probability: float) -> bool:
        return probability > 0 and self.rng.random() < probability
