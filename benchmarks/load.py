"""Simulated users on the fake Bot API server: inspectors walking buildings, echo users.

A user acts, then waits for the bot's answer: for the bot, the message (new or
edited) that carries the live card's buttons, which every step of the flow ends
with; for the echo bot, its message. Latency is from the moment the update is
queued at the fake server to the moment the answering call reaches it. The fake
tells the driver about every event and call as it happens (listeners), so the
driver never scans the fake's history: its own cost stays flat during a long run.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from benchmarks.seed import PlannedBuilding
from tests.harness import FakeTelegram
from tests.harness.phone import Phone
from tests.harness.state import Call, ChatEvent, JsonDict

STEP_TIMEOUT = 30.0

# What the inspector recognises on a card (texts/ of the bot; a changed wording
# shows up as a benchmark that stops: StepTimeout names the card).
MENU_SEND = "Передача показаний по дому"
BTN_SKIP = "Пропустить"
BTN_SEND = "Отправить"
BTN_ALL_BUILDINGS = "Весь список домов"
BTN_RETURN_TO_EMPTY = "Вернуться к заполнению"
BTN_KEEP = "Оставить"
SKIP_REASON = "Нет доступа"
REFUSED_VALUES = ("1234567890123", "12,3,4", "двенадцать")


class StepTimeout(AssertionError):
    """The bot did not answer a step in time."""


@dataclass(frozen=True, slots=True)
class Step:
    kind: str  # "value", "refused", "skip", "reason", "menu", "search", ...
    sent_at: float
    answered_at: float

    @property
    def latency(self) -> float:
        return self.answered_at - self.sent_at


@dataclass
class Recorder:
    """Every answered step, and the bot's calls per kind of step."""

    steps: list[Step] = field(default_factory=list)
    calls_by_kind: Counter[str] = field(default_factory=Counter)
    calls_by_method: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def between(self, start: float, end: float, kinds: set[str] | None = None) -> list[Step]:
        return [
            s
            for s in self.steps
            if start <= s.answered_at <= end and (kinds is None or s.kind in kinds)
        ]

    def count(self, kinds: set[str] | None = None) -> int:
        return sum(1 for s in self.steps if kinds is None or s.kind in kinds)


class Driver:
    """Routes the fake's events and calls to the simulated user of each chat."""

    def __init__(self, tg: FakeTelegram, answered: Callable[[ChatEvent], bool]) -> None:
        self.tg = tg
        self.recorder = Recorder()
        self._answered = answered
        self._waiting: dict[int, asyncio.Future[ChatEvent]] = {}
        self._kind: dict[int, str] = {}
        tg.event_listeners.append(self._on_event)
        tg.call_listeners.append(self._on_call)

    def close(self) -> None:
        self.tg.event_listeners.remove(self._on_event)
        self.tg.call_listeners.remove(self._on_call)

    def _on_event(self, event: ChatEvent) -> None:
        if not event.from_bot:
            return
        future = self._waiting.get(event.chat_id)
        if future is not None and not future.done() and self._answered(event):
            future.set_result(event)

    def _on_call(self, call: Call) -> None:
        if call.method == "getUpdates":
            return
        recorder = self.recorder
        recorder.calls_by_method[call.method] += 1
        if call.status != 200:
            recorder.errors[f"{call.method}: {call.error}"] += 1
        if isinstance(call.chat_id, int) and call.chat_id in self._kind:
            recorder.calls_by_kind[self._kind[call.chat_id]] += 1

    async def act(self, chat_id: int, kind: str, do: Callable[[], Awaitable[Any]]) -> ChatEvent:
        """Do one user action and wait for the bot's answer to it."""
        future: asyncio.Future[ChatEvent] = asyncio.get_running_loop().create_future()
        self._waiting[chat_id] = future
        self._kind[chat_id] = kind
        sent_at = time.monotonic()
        await do()
        try:
            event = await asyncio.wait_for(future, STEP_TIMEOUT)
        except TimeoutError:
            raise StepTimeout(
                f"no answer to {kind} in chat {chat_id} within {STEP_TIMEOUT} s\n"
                + self.tg.describe(chat_id)
            ) from None
        self.recorder.steps.append(Step(kind, sent_at, event.at))
        return event

    async def send(self, phone: Phone, kind: str, text: str) -> ChatEvent:
        """Type a text in the phone's chat and wait for the answer."""
        return await self.act(phone.chat_id, kind, lambda: phone.send(text))


def card_answer(event: ChatEvent) -> bool:
    """The bot's flow ends every answer with the live card: a message with buttons."""
    if event.kind not in ("new", "edit") or event.snapshot is None:
        return False
    return bool(event.snapshot.get("reply_markup", {}).get("inline_keyboard"))


def echo_answer(event: ChatEvent) -> bool:
    return event.kind == "new"


def _buttons(message: JsonDict) -> Iterator[tuple[str, str]]:
    for row in message.get("reply_markup", {}).get("inline_keyboard", []):
        for button in row:
            if "callback_data" in button:
                yield button["text"], button["callback_data"]


class BuildingPool:
    """Hands out buildings so that no two inspectors ever walk the same one."""

    def __init__(self, buildings: list[PlannedBuilding]) -> None:
        self._buildings = iter(buildings)

    def take(self) -> PlannedBuilding:
        building = next(self._buildings, None)
        if building is None:
            raise RuntimeError("the benchmark ran out of buildings: seed more")
        return building


class Inspector:
    """One inspector doing the real flow, one action per `step()`.

    Menu → «Передача показаний по дому» → types the street and house (sometimes
    with a typo) → taps the building → types a value into every slot, with a
    refused value now and then and a skip with a reason now and then → «Отправить»
    on the review → the next building.
    """

    def __init__(
        self,
        driver: Driver,
        phone: Phone,
        pool: BuildingPool,
        rng: random.Random,
        *,
        refused_share: float = 0.05,
        skip_share: float = 0.05,
    ) -> None:
        self.driver = driver
        self.phone = phone
        self.pool = pool
        self.rng = rng
        self.refused_share = refused_share
        self.skip_share = skip_share
        self.card: JsonDict | None = None
        self.building: PlannedBuilding | None = None
        self.searched = False
        self.last_kind = ""

    @property
    def walking(self) -> bool:
        """On a meter's card, waiting for its value."""
        return self.card is not None and BTN_SKIP in self._labels()

    def _labels(self) -> dict[str, str]:
        return dict(_buttons(self.card or {}))

    async def _send(self, kind: str, text: str) -> None:
        event = await self.driver.act(self.phone.chat_id, kind, lambda: self.phone.send(text))
        self.card = event.snapshot

    async def _press(self, kind: str, label_start: str) -> None:
        assert self.card is not None
        data = next(
            (data for label, data in _buttons(self.card) if label.startswith(label_start)), None
        )
        if data is None:
            raise StepTimeout(f"no button «{label_start}» on the card: {self.card.get('text')}")
        message_id = self.card["message_id"]
        event = await self.driver.act(
            self.phone.chat_id,
            kind,
            lambda: self.phone.press_data(data, message=message_id),
        )
        self.card = event.snapshot

    async def step(self, *, values_only: bool = False) -> str:
        """Do the next action of the flow; returns its kind.

        values_only: on a meter's card always type a valid value (the per-reading probe).
        """
        kind = self._next_kind(values_only)
        self.last_kind = kind
        if kind == "menu":
            await self._send(kind, "/menu")
        elif kind == "open_list":
            self.building, self.searched = self.pool.take(), False
            await self._press(kind, MENU_SEND)
        elif kind == "search":
            assert self.building is not None
            self.searched = True
            await self._send(kind, self.building.query(typo=self.rng.random() < 0.2))
        elif kind == "search_again":
            assert self.building is not None
            await self._send(kind, self.building.query(typo=False))
        elif kind == "choose":
            assert self.building is not None
            await self._press(kind, self.building.label)
        elif kind == "value":
            await self._send(kind, str(self.rng.randint(100, 2000)))
        elif kind == "refused":
            await self._send(kind, self.rng.choice(REFUSED_VALUES))
        elif kind == "skip":
            await self._press(kind, BTN_SKIP)
        elif kind == "reason":
            await self._press(kind, SKIP_REASON)
        elif kind == "keep":
            await self._press(kind, BTN_KEEP)
        elif kind == "send":
            await self._press(kind, BTN_SEND)
        return kind

    def _next_kind(self, values_only: bool) -> str:
        if self.card is None:
            return "menu"
        labels = self._labels()
        if BTN_SKIP in labels:  # a meter's card
            if values_only:
                return "value"
            roll = self.rng.random()
            if roll < self.refused_share and self.last_kind != "refused":
                return "refused"
            if roll < self.refused_share + self.skip_share:
                return "skip"
            return "value"
        if SKIP_REASON in labels:
            return "reason"
        if MENU_SEND in labels:
            return "open_list"
        if BTN_ALL_BUILDINGS in labels:  # search results
            assert self.building is not None
            return "choose" if self.building.label in labels else "search_again"
        if any(label.startswith(BTN_KEEP) for label in labels):
            return "keep"
        if BTN_RETURN_TO_EMPTY in labels or BTN_SEND in labels:  # review, or "not all filled"
            return "send"
        if not self.searched:  # the list of buildings
            return "search"
        return "menu"  # something unexpected: start over from the menu


class EchoUser:
    """Sends a text and waits for the echo, over and over."""

    def __init__(self, driver: Driver, phone: Phone, rng: random.Random) -> None:
        self.driver = driver
        self.phone = phone
        self.rng = rng

    async def step(self, *, values_only: bool = False) -> str:
        del values_only
        text = str(self.rng.randint(100, 2000))
        await self.driver.act(self.phone.chat_id, "value", lambda: self.phone.send(text))
        return "value"


SimulatedUser = Inspector | EchoUser


async def closed_loop(users: list[SimulatedUser], until: float) -> None:
    """Saturation: every user acts again as soon as the previous action was answered."""

    async def run(user: SimulatedUser) -> None:
        while time.monotonic() < until:
            await user.step()

    await asyncio.gather(*(run(user) for user in users))


async def paced(
    users: list[SimulatedUser],
    until: float,
    interval: float,
    rng: random.Random,
    *,
    values_only: bool = False,
) -> None:
    """Each user acts once every `interval` seconds, the users spread over the interval.

    A user whose answer comes later than its next turn acts at once when it comes
    (the latency figures then show it).
    """

    async def run(user: SimulatedUser) -> None:
        turn = time.monotonic() + rng.uniform(0, interval)
        while turn < until:
            delay = turn - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # the pace of the simulated person, not a wait
            await user.step(values_only=values_only)
            turn += interval

    await asyncio.gather(*(run(user) for user in users))


async def walk_into_building(inspectors: list[Inspector]) -> None:
    """Bring every inspector onto a meter's card (menu, search, choose), concurrently."""

    async def run(inspector: Inspector) -> None:
        for _ in range(20):
            if inspector.walking:
                return
            await inspector.step(values_only=True)
        raise StepTimeout(f"inspector {inspector.phone.chat_id} never reached a meter's card")

    await asyncio.gather(*(run(inspector) for inspector in inspectors))
