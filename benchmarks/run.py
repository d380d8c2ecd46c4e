"""The benchmark run: the echo bot, the bot on a small database, the bot on a million slots.

    python3 tasks.py bench [--smoke] [--out DIR] [--profile]

One fake Bot API server (tests/harness) serves every process of the run, in turn:

1. the echo bot (benchmarks/echo_bot.py): saturation with 1, 10 and 100 users, a
   paced run: the floor that aiogram and HTTP alone set on this machine, now; then
   the floor bot (benchmarks/floor_bot.py): the least a reading can cost (the value
   committed to SQLite, the card edited, the message deleted), on sqlite3 and through
   SQLAlchemy + aiosqlite, 10 users and paced;
2. the bot (python bot.py, embedded billing, SQLite) on a small database: the same
   saturation levels with inspectors doing the real flow; the paced run with 100
   inspectors at their meters, each sending a value every 3 s (a refused value or a
   skip now and then); and a per-reading latency probe;
3. the bot on a database of 10,000 buildings and 1,000,000 slots (billing's slots
   and the bot's drafts): building search, opening a 500-apartment building, the
   same per-reading probe, peak memory.

CPU is the bot process's own (psutil cpu_times, user + system) over the measuring
window; peak RSS is the kernel's high-water mark (VmHWM) of the process. Absolute
figures depend on the machine and what else runs on it; the ratios to the echo bot
measured in the same run are the comparable ones. This process's own garbage collector
is kept out of the timed windows (HarnessGc) and its longest pause in them reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import gc
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from benchmarks.load import (
    BuildingPool,
    Driver,
    EchoUser,
    Inspector,
    Recorder,
    SimulatedUser,
    Step,
    card_answer,
    closed_loop,
    echo_answer,
    paced,
    walk_into_building,
)
from benchmarks.seed import FIRST_USER_ID, PlannedBuilding, Seeded, plan_buildings, seed
from benchmarks.webhook import bench_webhook, services
from tests.harness import BotProcess, FakeTelegram
from tests.harness.fake_telegram import BOT_TOKEN
from tests.harness.state import ChatEvent

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The floor bot's users are chats of their own: the bot's inspectors start on clean chats.
FLOOR_USERS_OFFSET = 50_000
# The floor bot's strengths (benchmarks/floor_bot.py): prefix of the figures, FLOOR_KIND.
FLOORS = (("floor", "minimal"), ("floor_durable", "durable"), ("floor_stack", "stack"))
FLOOR_LABELS = {
    "floor": "floor bot, minimal",
    "floor_durable": "floor bot, durable",
    "floor_stack": "floor bot, stack",
}
READY_TIMEOUT = 180.0  # importing aiogram on a busy 2-core machine takes a while

# The keys (every one a number measured in the run), then the rest.
REQUIRED_KEYS = (
    "cpu_per_update_ratio_vs_echo",
    "updates_per_s_10_inspectors",
    "echo_updates_per_s_10_inspectors",
    "api_calls_per_reading",
    "p99_ms_paced_100_inspectors",
    "p50_ms_paced_100_inspectors",
    "search_p99_ms_10k_buildings",
    "open_building_ms_500_apartments",
    "reading_latency_ratio_1m_vs_small_db",
    "peak_rss_mb_1m_slots",
    "echo_peak_rss_mb",
)
# Webhook mode (issue 8), when the run includes it.
WEBHOOK_KEYS = (
    "webhook_updates_per_s_1_instance",
    "webhook_updates_per_s_2_instances",
    "webhook_2_vs_1_instances_ratio",
)


@dataclass(frozen=True)
class Config:
    levels: tuple[int, int, int] = (1, 10, 100)  # the keys say 1, 10 and 100
    warmup: float = 1.0
    window: float = 5.0
    paced_users: int = 100
    paced_interval: float = 3.0
    paced_seconds: float = 24.0
    echo_paced_seconds: float = 7.5  # the reference bots: 250 updates each
    probe_users: int = 10
    probe_interval: float = 0.5
    probe_seconds: float = 8.0
    small_buildings: int = 800
    small_apartments: int = 20
    scale_buildings: int = 10_000
    scale_apartments: int = 84  # 84 apartments = 100 slots
    big_buildings: int = 10
    big_apartments: int = 500
    search_queries: int = 300
    open_buildings: int = 5
    webhook_users: int = 20
    webhook_window: float = 8.0
    smoke: bool = False


# Tiny counts: every figure is produced the same way, none of them means anything.
SMOKE = Config(
    levels=(1, 2, 3),
    warmup=0.3,
    window=1.0,
    paced_users=4,
    paced_interval=0.5,
    paced_seconds=2.0,
    echo_paced_seconds=1.0,
    probe_users=2,
    probe_interval=0.3,
    probe_seconds=1.0,
    small_buildings=80,
    small_apartments=6,
    scale_buildings=120,
    scale_apartments=8,
    big_buildings=2,
    big_apartments=500,
    search_queries=10,
    open_buildings=2,
    webhook_users=3,
    webhook_window=1.0,
    smoke=True,
)


# --- measuring a process ----------------------------------------------------------------


class Monitor:
    """CPU seconds and peak memory of one process, or the sum over several (instances)."""

    def __init__(self, pid: int, *more: int) -> None:
        self.pid = pid
        self.pids = (pid, *more)
        self.processes = [psutil.Process(p) for p in self.pids]

    def cpu(self) -> float:
        return sum(float(t.user + t.system) for t in (p.cpu_times() for p in self.processes))

    def cpu_system(self) -> float:
        return sum(float(p.cpu_times().system) for p in self.processes)

    def peak_rss_mb(self) -> float:
        """The highest RSS since the start or since reset_peak() (summed over the pids)."""
        return sum(_peak_rss_mb(process) for process in self.processes)

    def reset_peak(self) -> bool:
        """Start the peak over from the current RSS (Linux: clear_refs 5).

        Called once a process is up and its account logged in: the start-up (imports,
        migrations) and the one argon2 check of the account's password in the
        embedded billing (64 MiB, returned at once) are not what the load costs.
        The lifetime peak is reported too.
        """
        try:
            for pid in self.pids:
                Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            return False
        return True


def _peak_rss_mb(process: psutil.Process) -> float:
    status = Path(f"/proc/{process.pid}/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float(process.memory_info().rss) / 2**20


class HarnessGc:
    """This process's garbage collector, kept out of the timed windows.

    A full collection here walks every live object of the fake server and the simulated
    users (~290,000; a 213 ms pause was seen), and every step in flight waits for it:
    latency that is not the bot's. So a window starts with a collection and freezes what
    survives; collections inside it walk only what the window made. The longest pause
    inside the windows goes into the results: the harness's own distortion, shown.
    """

    def __init__(self) -> None:
        self.longest = 0.0
        self._started = 0.0

    def _on_gc(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.longest = max(self.longest, time.perf_counter() - self._started)

    @contextlib.contextmanager
    def window(self) -> Iterator[None]:
        gc.collect()
        gc.freeze()
        gc.callbacks.append(self._on_gc)
        try:
            yield
        finally:
            gc.callbacks.remove(self._on_gc)
            gc.unfreeze()  # the next window's collect() frees what this one left


HARNESS_GC = HarnessGc()


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (share 0..1) of `values`, 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


class Steal:
    """The share of the machine's CPU time its hypervisor took away (Linux /proc/stat).

    A virtual machine's host can run other guests on "our" cores: steal time. It
    slows every process of the run alike, so absolute figures fall with it while
    ratios measured side by side hold better. Reported per part of the run.
    """

    def __init__(self) -> None:
        self._start = self._read()

    @staticmethod
    def _read() -> tuple[int, int] | None:
        try:
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        except OSError:
            return None
        ticks = [int(x) for x in fields[:8]]  # user … steal; guest time is inside user
        return ticks[7], sum(ticks)

    def share(self) -> float | None:
        end, start = self._read(), self._start
        if end is None or start is None or end[1] == start[1]:
            return None
        return round((end[0] - start[0]) / (end[1] - start[1]), 3)


# --- the processes ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running(
    tg: FakeTelegram, script: str, env: dict[str, str], log_dir: Path, name: str
) -> AsyncIterator[BotProcess]:
    """Start a bot process on the fake server and wait until it polls."""
    async with running_all(tg, script, [env], log_dir, [name]) as processes:
        yield processes[0]


@contextlib.asynccontextmanager
async def running_all(
    tg: FakeTelegram,
    script: str,
    envs: list[dict[str, str]],
    log_dir: Path,
    names: list[str],
    ready: str = "getUpdates",
) -> AsyncIterator[list[BotProcess]]:
    """Start one process per env at once; wait until each made its `ready` call."""
    processes = [
        BotProcess(
            {
                "BOT_TOKEN": BOT_TOKEN,
                "TELEGRAM_API_URL": tg.api_url,
                "MODE": "polling",
                "LOG_LEVEL": "WARNING",
                # The deploy's allocator setting (deploy/Dockerfile), for every process.
                "MALLOC_ARENA_MAX": "2",
                **env,
            },
            args=(script,),
            cwd=ROOT,
            log_path=log_dir / f"{name}.log",
            name=name,
        )
        for env, name in zip(envs, names, strict=True)
    ]
    tg.keep_history = True  # wait_for_call reads the history
    since = tg.now()
    try:
        for process in processes:
            await process.start()
            tg.watch(process)
        for _ in processes:
            call = await tg.wait_for_call(ready, since=since, timeout=READY_TIMEOUT)
            since = call.at + 1e-9
        tg.keep_history = False
        tg.calls.clear()
        tg.events.clear()
        yield processes
    finally:
        tg.keep_history = True
        for process in processes:
            await process.close()


def free_ports(count: int) -> list[int]:
    """Free TCP ports on 127.0.0.1 (held open together, so they differ)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


async def _until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)  # the benchmark's clock: windows of fixed length


@dataclass
class Saturation:
    users: int
    updates_per_s: float
    cpu_ms_per_update: float
    system_cpu_share: float  # of cpu_ms_per_update, spent in the kernel
    peak_rss_mb: float
    p50_ms: float


async def saturate(
    users: list[SimulatedUser],
    recorder: Recorder,
    monitor: Monitor,
    config: Config,
    profile_to: Path | None = None,
    window: float | None = None,
) -> Saturation:
    """Closed loop: warm up, then count answers and CPU over a fixed window."""
    window = window or config.window
    with HARNESS_GC.window():
        start = time.monotonic()
        window_start = start + config.warmup
        window_end = window_start + window
        load = asyncio.create_task(closed_loop(users, until=window_end))
        await _until(window_start)
        cpu_start, system_start = monitor.cpu(), monitor.cpu_system()
        profiler = _start_profiler(monitor.pid, window, profile_to) if profile_to else None
        await _until(window_end)
        cpu_used = monitor.cpu() - cpu_start
        system_used = monitor.cpu_system() - system_start
        await load
    if profiler is not None:
        await asyncio.to_thread(profiler.wait, 60)
    steps = recorder.between(window_start, window_end)
    count = max(len(steps), 1)
    return Saturation(
        users=len(users),
        updates_per_s=round(len(steps) / window, 1),
        cpu_ms_per_update=round(cpu_used * 1000 / count, 3),
        system_cpu_share=round(system_used / cpu_used, 2) if cpu_used else 0.0,
        peak_rss_mb=round(monitor.peak_rss_mb(), 1),
        p50_ms=ms(percentile([s.latency for s in steps], 0.5)),
    )


def _start_profiler(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes] | None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("bench: py-spy is not installed; no profile", flush=True)
        return None
    return subprocess.Popen(
        [py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "250",
         "--format", "raw", "--output", str(output), "--nonblocking", "--gil"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


@dataclass
class Latency:
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def latency_of(values: list[float]) -> Latency:
    return Latency(
        count=len(values),
        p50_ms=ms(percentile(values, 0.5)),
        p95_ms=ms(percentile(values, 0.95)),
        p99_ms=ms(percentile(values, 0.99)),
        max_ms=ms(max(values, default=0.0)),
    )


async def run_paced(
    users: list[SimulatedUser],
    recorder: Recorder,
    seconds: float,
    interval: float,
    rng: random.Random,
    *,
    values_only: bool = False,
    kinds: set[str] | None = None,
) -> Latency:
    with HARNESS_GC.window():
        start = time.monotonic()
        await paced(users, start + seconds, interval, rng, values_only=values_only)
    steps = recorder.between(start, time.monotonic() + 1, kinds)
    return latency_of([s.latency for s in steps])


# --- the three parts --------------------------------------------------------------------


def _phones(tg: FakeTelegram, first: int, count: int) -> Iterator[Any]:
    for user_id in range(first, first + count):
        yield tg.user(user_id, f"Контролёр {user_id}", started=True)


@dataclass(frozen=True)
class Reference:
    """A reference bot of the run: its script, how it answers, which levels it runs."""

    name: str  # the prefix of its figures: echo_..., floor_...
    script: str
    answered: Callable[[ChatEvent], bool]
    all_levels: bool  # saturation at 1, 10 and 100 users, or at 10 only
    first_user: int
    env: dict[str, str] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def _reference_users(
    tg: FakeTelegram, ref: Reference, log_dir: Path, name: str, count: int, rng: random.Random
) -> AsyncIterator[tuple[Monitor, Driver, list[SimulatedUser]]]:
    """A reference bot running, and `count` users who just type values (one step made)."""
    async with running(tg, ref.script, ref.env, log_dir, name) as process:
        monitor = Monitor(process.pid)
        driver = Driver(tg, ref.answered)
        phones = _phones(tg, ref.first_user, count)
        users: list[SimulatedUser] = [EchoUser(driver, phone, rng) for phone in phones]
        await users[0].step()
        try:
            yield monitor, driver, users
        finally:
            driver.close()


async def bench_reference(
    tg: FakeTelegram, config: Config, log_dir: Path, results: dict[str, Any], ref: Reference
) -> None:
    """Saturation and the paced run against a reference bot (users just type values)."""
    rng = random.Random(1)
    levels = config.levels if ref.all_levels else config.levels[1:2]
    count = max(levels[-1], config.paced_users)
    async with _reference_users(tg, ref, log_dir, ref.name, count, rng) as (monitor, driver, users):
        results[f"{ref.name}_peak_rss_mb_with_start"] = round(monitor.peak_rss_mb(), 1)
        monitor.reset_peak()
        for level in levels:
            result = await saturate(users[:level], driver.recorder, monitor, config)
            print(f"bench: {ref.name}, {level} users: {result}", flush=True)
            _put_saturation(results, f"{ref.name}_", level, config, result)
        paced_latency = await run_paced(
            users[: config.paced_users],
            driver.recorder,
            config.echo_paced_seconds,
            config.paced_interval,
            rng,
        )
        print(f"bench: {ref.name}, paced: {paced_latency}", flush=True)
        _put_paced(results, f"{ref.name}_", paced_latency)
        results[f"{ref.name}_api_calls_per_update"] = round(
            sum(driver.recorder.calls_by_method.values()) / max(len(driver.recorder.steps), 1), 3
        )
        results[f"{ref.name}_api_errors"] = sum(driver.recorder.errors.values())
        results[f"{ref.name}_peak_rss_mb"] = round(monitor.peak_rss_mb(), 1)


def echo_reference(first_user: int = FIRST_USER_ID) -> Reference:
    """The echo bot: aiogram and HTTP alone, the baseline of the CPU ratio."""
    return Reference("echo", "benchmarks/echo_bot.py", echo_answer, True, first_user)


def references(work: Path) -> list[Reference]:
    """The floor bot's strengths, then the echo bot: its windows come just before the
    bot's (bench_echo_after measures it again just after)."""
    floors = [
        Reference(
            name,
            "benchmarks/floor_bot.py",
            card_answer,
            False,
            FIRST_USER_ID + FLOOR_USERS_OFFSET * (i + 1),
            # PYTHONPATH: the stack strength imports the bot's SQLite driver (storage/).
            {"FLOOR_DB": str(work / f"{name}.db"), "FLOOR_KIND": kind, "PYTHONPATH": str(ROOT)},
        )
        for i, (name, kind) in enumerate(FLOORS)
    ]
    return [*floors, echo_reference()]


async def bench_echo_after(
    tg: FakeTelegram, config: Config, log_dir: Path, results: dict[str, Any]
) -> None:
    """The echo bot's 10-user window again, right after the bot's small-database part.

    The host's speed drifts within minutes (steal, a neighbour's load), and a ratio of
    two windows measured a minute apart drifts with it: the CPU ratio divides the
    bot's figure by the mean of the echo's windows just before and just after it.
    """
    # Chats of their own, as the floor bot's: the bot's inspectors used the others.
    echo = echo_reference(FIRST_USER_ID + FLOOR_USERS_OFFSET * (len(FLOORS) + 1))
    level = config.levels[1]
    rng = random.Random(3)
    async with _reference_users(tg, echo, log_dir, "echo-after", level, rng) as (
        monitor,
        driver,
        users,
    ):
        result = await saturate(users, driver.recorder, monitor, config)
        print(f"bench: echo again, {level} users: {result}", flush=True)
        _put_saturation(results, "echo_after_", level, config, result)


def _put_paced(results: dict[str, Any], prefix: str, latency: Latency) -> None:
    for name in ("p50", "p95", "p99", "max"):
        results[f"{prefix}{name}_ms_paced_100_inspectors"] = getattr(latency, f"{name}_ms")
    results[f"{prefix}paced_updates"] = latency.count


# Typing at a meter: what the paced model is ("a value every 3 s"). The other steps
# there are an inspector finishing a building: «Отправить», whose answer (the card
# after «Отправляю…») waits for billing's verdict, and opening the next building.
TYPING_KINDS = frozenset({"value", "refused", "skip", "reason", "keep"})


def _put_paced_by_kind(results: dict[str, Any], steps: list[Step]) -> None:
    """The paced latency per kind of step, and over typing at a meter alone."""
    results["paced_latency_by_kind"] = {
        kind: asdict(latency_of([s.latency for s in steps if s.kind == kind]))
        for kind in sorted({s.kind for s in steps})
    }
    typing = latency_of([s.latency for s in steps if s.kind in TYPING_KINDS])
    results["p50_ms_paced_typing"] = typing.p50_ms
    results["p99_ms_paced_typing"] = typing.p99_ms


def _level_name(level: int, config: Config) -> int:
    # Smoke runs use tiny levels but fill the same keys as the full run.
    return (1, 10, 100)[config.levels.index(level)]


def _put_saturation(
    results: dict[str, Any], prefix: str, level: int, config: Config, result: Saturation
) -> None:
    # The echo's simulated users are called inspectors too: the key names.
    name = _level_name(level, config)
    results[f"{prefix}updates_per_s_{name}_inspectors"] = result.updates_per_s
    results[f"{prefix}cpu_ms_per_update_{name}_inspectors"] = result.cpu_ms_per_update
    results[f"{prefix}p50_ms_saturated_{name}_inspectors"] = result.p50_ms
    results[f"{prefix}peak_rss_mb_{name}_inspectors"] = result.peak_rss_mb


def small_plan(config: Config) -> list[PlannedBuilding]:
    return plan_buildings(config.small_buildings, lambda _i: config.small_apartments)


def scale_plan(config: Config) -> list[PlannedBuilding]:
    return plan_buildings(
        config.scale_buildings,
        lambda i: config.big_apartments if i < config.big_buildings else config.scale_apartments,
    )


async def reading_probe(
    tg: FakeTelegram,
    driver: Driver,
    pool: BuildingPool,
    first_user: int,
    config: Config,
    monitor: Monitor,
) -> tuple[Latency, float]:
    """Per-reading latency without queueing: a few inspectors typing values at a calm pace.

    Also the bot's CPU milliseconds per reading over the same window: unlike the
    latency, CPU time hardly moves with what else the host runs (steal), so the two
    databases' parts, minutes apart, compare fairly.
    """
    rng = random.Random(7)
    inspectors = [
        Inspector(driver, phone, pool, rng) for phone in _phones(tg, first_user, config.probe_users)
    ]
    await walk_into_building(inspectors)
    cpu = monitor.cpu()
    latency = await run_paced(
        list(inspectors),
        driver.recorder,
        config.probe_seconds,
        config.probe_interval,
        rng,
        values_only=True,
        kinds={"value"},
    )
    return latency, round((monitor.cpu() - cpu) * 1000 / max(latency.count, 1), 3)


async def bench_bot_small(
    tg: FakeTelegram,
    config: Config,
    work: Path,
    results: dict[str, Any],
    profile: bool,
) -> None:
    plan = small_plan(config)
    inspectors_needed = max(config.levels[-1], config.paced_users) + config.probe_users
    seeded = await seed(work / "small", plan, inspectors=inspectors_needed)
    results["small_db_slots"] = seeded.slots
    print(f"bench: small database: {len(plan)} buildings, {seeded.slots} slots", flush=True)
    rng = random.Random(2)
    async with running(tg, "bot.py", seeded.env, work, "bot-small") as process:
        monitor = Monitor(process.pid)
        driver = Driver(tg, card_answer)
        pool = BuildingPool(plan)
        count = max(config.levels[-1], config.paced_users)
        inspectors = [
            Inspector(driver, phone, pool, rng) for phone in _phones(tg, FIRST_USER_ID, count)
        ]
        # The first action of the run logs the account in to billing (argon2, once):
        # not part of any window.
        await walk_into_building(inspectors[:1])
        results["peak_rss_mb_small_db_with_start"] = round(monitor.peak_rss_mb(), 1)
        monitor.reset_peak()
        for level in config.levels:
            profile_to = work / "profile-bot.txt" if profile and level == config.levels[1] else None
            result = await saturate(
                list(inspectors[:level]), driver.recorder, monitor, config, profile_to
            )
            print(f"bench: bot, {level} inspectors: {result}", flush=True)
            _put_saturation(results, "", level, config, result)
            if profile_to is not None and profile_to.exists():
                shutil.copy(profile_to, HERE / "profile-bot.txt")
        # The paced run is the busy day: every inspector at a meter (most are
        # after saturation; the rest open their building here, outside the window),
        # then each sends a value every 3 s, a refused value or a skip now and then.
        await walk_into_building(inspectors[: config.paced_users])
        paced_start = time.monotonic()
        paced_latency = await run_paced(
            list(inspectors[: config.paced_users]),
            driver.recorder,
            config.paced_seconds,
            config.paced_interval,
            rng,
        )
        print(f"bench: bot, paced: {paced_latency}", flush=True)
        _put_paced(results, "", paced_latency)
        paced_steps = driver.recorder.between(paced_start, time.monotonic())
        results["paced_updates_by_kind"] = dict(Counter(s.kind for s in paced_steps))
        _put_paced_by_kind(results, paced_steps)
        probe, cpu = await reading_probe(tg, driver, pool, FIRST_USER_ID + count, config, monitor)
        print(f"bench: bot, small database, reading probe: {probe}, CPU {cpu} ms", flush=True)
        results["reading_p50_ms_small_db"] = probe.p50_ms
        results["reading_cpu_ms_small_db"] = cpu
        recorder = driver.recorder
        readings = recorder.count({"value"})
        results["readings_entered"] = readings
        results["api_calls_per_reading"] = round(
            recorder.calls_by_kind["value"] / max(readings, 1), 3
        )
        results["api_calls_per_update"] = round(
            sum(recorder.calls_by_kind.values()) / max(len(recorder.steps), 1), 3
        )
        results["api_calls_by_method"] = dict(recorder.calls_by_method.most_common())
        results["api_calls_by_step"] = {
            kind: round(calls / max(recorder.count({kind}), 1), 2)
            for kind, calls in sorted(recorder.calls_by_kind.items())
        }
        results["api_errors"] = sum(recorder.errors.values())
        results["api_errors_by_kind"] = dict(recorder.errors.most_common(10))
        results["api_calls_not_modified"] = sum(
            n for error, n in recorder.errors.items() if "not modified" in error
        )
        results["peak_rss_mb_small_db"] = round(monitor.peak_rss_mb(), 1)
        driver.close()


async def bench_bot_scale(
    tg: FakeTelegram, config: Config, work: Path, results: dict[str, Any]
) -> None:
    plan = scale_plan(config)
    big = plan[: config.big_buildings]

    def draft_status(building: PlannedBuilding) -> str | None:
        if building.number <= config.big_buildings:
            return None  # opened for the first time in the run
        return "accepted" if building.number % 2 == 0 else "empty"

    users = 2 + config.open_buildings + config.probe_users
    seeded = await seed(work / "scale", plan, inspectors=users, draft_status=draft_status)
    results["scale_db_buildings"] = len(plan)
    results["scale_db_slots"] = seeded.slots
    results["scale_db_draft_slots"] = seeded.draft_slots
    results["scale_seed_seconds"] = round(seeded.seconds, 1)
    print(
        f"bench: large database: {len(plan)} buildings, {seeded.slots} slots, "
        f"{seeded.draft_slots} draft slots, seeded in {seeded.seconds:.1f} s",
        flush=True,
    )
    await search_in_process(seeded, config, results)
    rng = random.Random(3)
    async with running(tg, "bot.py", seeded.env, work, "bot-scale") as process:
        monitor = Monitor(process.pid)
        driver = Driver(tg, card_answer)
        user_ids = iter(range(FIRST_USER_ID, FIRST_USER_ID + users))

        # Search through the bot: one inspector typing addresses on the list of buildings.
        phone = tg.user(next(user_ids), "Поиск", started=True)
        searcher = Inspector(driver, phone, BuildingPool(plan), rng)
        await searcher.step()  # the menu
        await searcher.step()  # the list of buildings: logs in, loads 10,000 buildings
        results["peak_rss_mb_1m_slots_with_start"] = round(monitor.peak_rss_mb(), 1)
        monitor.reset_peak()
        with HARNESS_GC.window():
            for building in rng.sample(plan, min(config.search_queries, len(plan))):
                await driver.send(phone, "search", building.query(typo=rng.random() < 0.2))
        e2e = latency_of([s.latency for s in driver.recorder.steps if s.kind == "search"])
        results["search_e2e_p50_ms_10k_buildings"] = e2e.p50_ms
        results["search_e2e_p99_ms_10k_buildings"] = e2e.p99_ms

        # Opening a 500-apartment building for the first time this period.
        opens = []
        with HARNESS_GC.window():
            for building in big[: config.open_buildings]:
                phone = tg.user(next(user_ids), "Открывает", started=True)
                opener = Inspector(driver, phone, BuildingPool([building]), rng)
                while not opener.walking:
                    kind = await opener.step(values_only=True)
                    if kind == "choose":
                        opens.append(driver.recorder.steps[-1].latency)
        results["open_building_ms_500_apartments"] = ms(statistics.median(opens))
        results["open_building_max_ms_500_apartments"] = ms(max(opens))

        probe_pool = BuildingPool([b for b in plan if draft_status(b) == "empty"])
        probe, cpu = await reading_probe(tg, driver, probe_pool, next(user_ids), config, monitor)
        print(f"bench: bot, large database, reading probe: {probe}, CPU {cpu} ms", flush=True)
        results["reading_p50_ms_1m_db"] = probe.p50_ms
        results["reading_cpu_ms_1m_db"] = cpu
        results["peak_rss_mb_1m_slots"] = round(monitor.peak_rss_mb(), 1)
        results["api_errors_1m_db"] = sum(driver.recorder.errors.values())
        driver.close()


async def search_in_process(seeded: Seeded, config: Config, results: dict[str, Any]) -> None:
    """The bot's own search (services.buildings) over the account's buildings, timed alone."""
    from pydantic import SecretStr

    from benchmarks.seed import LOGIN, PASSWORD
    from billing_client.base import BillingAuth
    from billing_client.embedded import EmbeddedBilling
    from services.buildings import BuildingDirectory

    billing = await EmbeddedBilling.open(seeded.env["BILLING_DATABASE_URL"])
    try:
        auth = BillingAuth(login=LOGIN, password=SecretStr(PASSWORD))
        directory = BuildingDirectory(billing)
        rng = random.Random(4)
        queries = [
            b.query(typo=rng.random() < 0.2)
            for b in rng.sample(seeded.buildings, min(config.search_queries, len(seeded.buildings)))
        ]
        started = time.perf_counter()
        await directory.search("acc-1", auth, queries[0])  # loads and indexes the list
        results["search_cold_ms_10k_buildings"] = ms(time.perf_counter() - started)
        times, cpu_times = [], []
        with HARNESS_GC.window():
            for query in queries:
                started, cpu_started = time.perf_counter(), time.thread_time()
                await directory.search("acc-1", auth, query)
                times.append(time.perf_counter() - started)
                cpu_times.append(time.thread_time() - cpu_started)
        results["search_p50_ms_10k_buildings"] = ms(percentile(times, 0.5))
        results["search_p99_ms_10k_buildings"] = ms(percentile(times, 0.99))
        # The same searches in CPU time of the thread: what the search costs without
        # the time the machine's other work preempted it.
        results["search_cpu_p99_ms_10k_buildings"] = ms(percentile(cpu_times, 0.99))
    finally:
        await billing.close()


# --- the report -------------------------------------------------------------------------


def merged_webhook_figures(path: Path, webhook: dict[str, Any]) -> dict[str, Any]:
    """The committed results with the webhook figures (and their run's context) replaced."""
    if not path.exists():
        return webhook
    results: dict[str, Any] = json.loads(path.read_text())
    results.update({key: value for key, value in webhook.items() if key.startswith("webhook_")})
    results["webhook_run"] = {
        "date": webhook["machine"]["date"],
        "commit": webhook["machine"]["commit"],
        "load_average_start": webhook["load_average_start"],
        "load_average_end": webhook["load_average_end"],
        "run_seconds": webhook["run_seconds"],
        "harness_gc_pause_max_ms": webhook["harness_gc_pause_max_ms"],
    }
    results.setdefault("cpu_steal_share", {})["webhook"] = webhook["cpu_steal_share"]["webhook"]
    return results


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    def git(*args: str) -> str:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            return subprocess.run(
                ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout.strip()
        return ""

    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "aiogram": version("aiogram"),
        "sqlalchemy": version("sqlalchemy"),
        "aiosqlite": version("aiosqlite"),
        "commit": git("rev-parse", "--short", "HEAD"),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def derive(results: dict[str, Any]) -> None:
    """The ratios: to the echo bot, and large database to small."""
    before = results["echo_cpu_ms_per_update_10_inspectors"]
    after = results["echo_after_cpu_ms_per_update_10_inspectors"]
    results["echo_cpu_ms_per_update_10_around_bot"] = round((before + after) / 2, 3)
    results["echo_cpu_after_vs_before_10"] = round(after / before, 2)
    for level in (1, 10, 100):
        echo = results[
            "echo_cpu_ms_per_update_10_around_bot"
            if level == 10
            else f"echo_cpu_ms_per_update_{level}_inspectors"
        ]
        results[f"cpu_per_update_ratio_vs_echo_{level}"] = round(
            results[f"cpu_ms_per_update_{level}_inspectors"] / echo, 2
        )
    results["cpu_per_update_ratio_vs_echo"] = results["cpu_per_update_ratio_vs_echo_10"]
    for name, _kind in FLOORS:
        floor = results[f"{name}_cpu_ms_per_update_10_inspectors"]
        results[f"{name}_cpu_per_update_ratio_vs_echo"] = round(
            floor / results["echo_cpu_ms_per_update_10_inspectors"], 2
        )
        results[f"cpu_per_update_ratio_vs_{name}"] = round(
            results["cpu_ms_per_update_10_inspectors"] / floor, 2
        )
    results["api_calls_per_update_ratio_vs_echo"] = round(
        results["api_calls_per_update"] / results["echo_api_calls_per_update"], 2
    )
    results["reading_latency_ratio_1m_vs_small_db"] = round(
        results["reading_p50_ms_1m_db"] / results["reading_p50_ms_small_db"], 2
    )
    results["reading_cpu_ratio_1m_vs_small_db"] = round(
        results["reading_cpu_ms_1m_db"] / results["reading_cpu_ms_small_db"], 2
    )
    results["peak_rss_mb_over_echo_1m_slots"] = round(
        results["peak_rss_mb_1m_slots"] - results["echo_peak_rss_mb"], 1
    )


TARGETS: list[tuple[str, str, str, float | None]] = [
    # key, what, target, limit (None: no target, shown for context)
    ("cpu_per_update_ratio_vs_echo", "CPU per update vs echo (10 inspectors)", "≤ 1.5×", 1.5),
    ("api_calls_per_reading", "Bot API calls per entered reading", "≤ 2", 2.0),
    ("api_calls_not_modified", "calls that changed nothing", "0", 0.0),
    ("p50_ms_paced_100_inspectors", "paced, 100 inspectors: p50 ms", "", None),
    ("p95_ms_paced_100_inspectors", "paced, 100 inspectors: p95 ms", "", None),
    ("p99_ms_paced_100_inspectors", "paced, 100 inspectors: p99 ms", "≤ 50", 50.0),
    ("p99_ms_paced_typing", "paced, typing at a meter alone: p99 ms", "(≤ 50)", None),
    ("search_p99_ms_10k_buildings", "search p99 ms, 10,000 buildings", "≤ 5", 5.0),
    ("open_building_ms_500_apartments", "open a 500-apartment building, ms", "≤ 100", 100.0),
    ("reading_latency_ratio_1m_vs_small_db", "per-reading latency, 1M vs small DB", "≈ 1", 1.2),
    ("reading_cpu_ratio_1m_vs_small_db", "per-reading CPU, 1M vs small DB", "≈ 1", 1.2),
    ("peak_rss_mb_over_echo_1m_slots", "peak RSS over echo, 1M slots, MB", "≤ 50", 50.0),
]  # fmt: skip


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"{m['date']} · {m['cpu_count']} × {m['cpu_model']} · {m['platform']} · "
        f"Python {m['python']} · aiogram {m['aiogram']} · SQLAlchemy {m['sqlalchemy']} · "
        f"commit {m['commit']}"
        + (" · **smoke run: the figures mean nothing**" if results["smoke"] else ""),
        "",
        f"Load average when the run started / ended: {results['load_average_start']} / "
        f"{results['load_average_end']} (other work on the machine makes absolute figures "
        "noisy; the ratios to the echo bot are measured in the same run). CPU time the "
        "virtual machine's host took away (steal) by part of the run: "
        + ", ".join(
            f"{part} {share:.1%}" if share is not None else f"{part} unknown"
            for part, share in results.get("cpu_steal_share", {}).items()
        )
        + ".",
        "",
    ]
    if "harness_gc_pause_max_ms" in results:
        lines += [
            "The benchmark process's own longest garbage-collector pause in a timed window: "
            f"{results['harness_gc_pause_max_ms']} ms (each window starts with gc.collect() "
            "and gc.freeze(), so the harness adds no long pause to the bot's latency).",
            "",
        ]
    if "cpu_per_update_ratio_vs_echo" in results:
        lines += polling_markdown(results)
    if "webhook_2_vs_1_instances_ratio" in results:
        lines += webhook_markdown(results)
    lines.append(f"Run time {results['run_seconds']} s.")
    return "\n".join(lines) + "\n"


def webhook_markdown(r: dict[str, Any]) -> list[str]:
    run = r.get("webhook_run")
    when = (
        f" (measured separately: {run['date']}, commit {run['commit']}, load average "
        f"{run['load_average_start']} / {run['load_average_end']})"
        if run
        else ""
    )
    lines = [
        "## Webhook mode: 1 vs 2 instances on PostgreSQL + Redis",
        "",
        f"{r['webhook_inspectors']} inspectors in a closed loop; the fake server posts "
        "webhooks in parallel to a round-robin balancer in front of the instances"
        f"{when}. The machine has {os.cpu_count()} cores shared by PostgreSQL, Redis, the "
        "fake server, the inspectors and the instances: the ratio is bounded by that.",
        "",
        "| instances | updates/s | CPU ms/update (all instances) | p50 ms | failed deliveries |",
        "|---:|---:|---:|---:|---:|",
    ]
    for n, name in ((1, "1_instance"), (2, "2_instances")):
        lines.append(
            f"| {n} | {r[f'webhook_updates_per_s_{name}']} "
            f"| {r[f'webhook_cpu_ms_per_update_{n}_instances']} "
            f"| {r[f'webhook_p50_ms_{n}_instances']} "
            f"| {r[f'webhook_failed_deliveries_{n}_instances']} |"
        )
    lines += ["", f"2 vs 1 instances: **{r['webhook_2_vs_1_instances_ratio']}×**.", ""]
    return lines


def polling_markdown(results: dict[str, Any]) -> list[str]:
    lines = [
        "## Targets",
        "",
        "| figure | measured | target | met |",
        "|---|---:|---|:-:|",
    ]
    for key, what, target, limit in TARGETS:
        value = results.get(key)
        if value is None:  # a figure older results do not have
            continue
        met = "" if limit is None else ("yes" if value <= limit else "**no**")
        lines.append(f"| {what} | {value} | {target} | {met} |")
    lines += [
        "",
        "## Saturation (closed loop)",
        "",
        "| users | bot updates/s | echo updates/s | bot CPU ms/update | echo CPU ms/update "
        "| ratio | bot p50 ms | echo p50 ms | bot peak RSS MB | echo peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in (1, 10, 100):
        cells = [
            results[key.format(n=n)]
            for key in (
                "updates_per_s_{n}_inspectors",
                "echo_updates_per_s_{n}_inspectors",
                "cpu_ms_per_update_{n}_inspectors",
                "echo_cpu_ms_per_update_{n}_inspectors",
                "cpu_per_update_ratio_vs_echo_{n}",
                "p50_ms_saturated_{n}_inspectors",
                "echo_p50_ms_saturated_{n}_inspectors",
                "peak_rss_mb_{n}_inspectors",
                "echo_peak_rss_mb_{n}_inspectors",
            )
        ]
        lines.append(f"| {n} | " + " | ".join(str(c) for c in cells) + " |")
    r = results
    if "echo_after_cpu_ms_per_update_10_inspectors" in r:  # not in older results
        lines += [
            "",
            "The echo's 10-user window runs twice, just before the bot's part "
            f"({r['echo_cpu_ms_per_update_10_inspectors']} ms per update, the table's figure) "
            f"and just after it ({r['echo_after_cpu_ms_per_update_10_inspectors']} ms, "
            f"{r['echo_cpu_after_vs_before_10']}× the first): the host's speed drifts within "
            "minutes, so the ratio at 10 divides by their mean, "
            f"{r['echo_cpu_ms_per_update_10_around_bot']} ms.",
        ]
    lines += [
        "",
        "## Paced: 100 users, one action every 3 s",
        "",
        "Every inspector is at a meter first; then each sends a value every 3 s, now and "
        "then a refused value or a skip. The bot's updates in the window by kind: "
        + ", ".join(f"{kind} {n}" for kind, n in sorted(r["paced_updates_by_kind"].items()))
        + ".",
        "",
        "By kind of step (a send's answer is the card after «Отправляю…»: it waits for "
        "billing's verdict):",
        "",
        "| step | count | p50 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {kind} | {k['count']} | {k['p50_ms']} | {k['p99_ms']} | {k['max_ms']} |"
            for kind, k in r.get("paced_latency_by_kind", {}).items()
        ),
        "",
        "| | p50 ms | p95 ms | p99 ms |",
        "|---|---:|---:|---:|",
        f"| bot ({r['paced_updates']} updates) | {r['p50_ms_paced_100_inspectors']} "
        f"| {r['p95_ms_paced_100_inspectors']} | {r['p99_ms_paced_100_inspectors']} |",
        f"| echo | {r['echo_p50_ms_paced_100_inspectors']} "
        f"| {r['echo_p95_ms_paced_100_inspectors']} | {r['echo_p99_ms_paced_100_inspectors']} |",
        *(
            f"| {FLOOR_LABELS[name]} | {r[f'{name}_p50_ms_paced_100_inspectors']} "
            f"| {r[f'{name}_p95_ms_paced_100_inspectors']} "
            f"| {r[f'{name}_p99_ms_paced_100_inspectors']} |"
            for name, _kind in FLOORS
        ),
        "",
        "## The floor: the least a reading can cost",
        "",
        "benchmarks/floor_bot.py answers a typed value as the bot does (the card edited, "
        "the message deleted) with hand-written SQL on sqlite3 (WAL, synchronous=FULL) "
        "and no sessions, ORM, FSM framework or middlewares. *minimal*: the value "
        "committed, nothing else. *durable*: what a reading needs under this product's "
        "rules: the update stored before it is handled, the sender's access read, the "
        "slot read and committed, the next slot and the counts read, the state stored "
        "with the done mark. *stack*: the durable floor's statements and transactions "
        "through the mandated stack (SQLAlchemy Core text() on one AsyncConnection, "
        "aiosqlite with the bot's driver) instead of sqlite3. Measured in the same run, "
        "10 users:",
        "",
        "| | updates/s | CPU ms/update | vs echo | the bot vs it |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {FLOOR_LABELS[name]} | {r[f'{name}_updates_per_s_10_inspectors']} "
            f"| {r[f'{name}_cpu_ms_per_update_10_inspectors']} "
            f"| {r[f'{name}_cpu_per_update_ratio_vs_echo']} "
            f"| {r[f'cpu_per_update_ratio_vs_{name}']} |"
            for name, _kind in FLOORS
        ),
        "",
        "## Bot API calls",
        "",
        f"Per entered reading: {r['api_calls_per_reading']}; per update: "
        f"{r['api_calls_per_update']} (echo: {r['echo_api_calls_per_update']}, ratio "
        f"{r['api_calls_per_update_ratio_vs_echo']}); errors answered: {r['api_errors']} "
        f"(«not modified»: {r['api_calls_not_modified']}).",
        "",
        "| step | calls per step |",
        "|---|---:|",
        *(f"| {kind} | {n} |" for kind, n in r["api_calls_by_step"].items()),
        "",
        f"## Data scale: {r['scale_db_buildings']} buildings, {r['scale_db_slots']} slots in "
        f"billing, {r['scale_db_draft_slots']} draft slots in the bot's database",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| search p50 / p99 ms (the bot's search service) | {r['search_p50_ms_10k_buildings']} / "
        f"{r['search_p99_ms_10k_buildings']} |",
        f"| search p99, CPU time of the searching thread, ms | "
        f"{r['search_cpu_p99_ms_10k_buildings']} |",
        f"| first search after start (loads and indexes the list), ms | "
        f"{r['search_cold_ms_10k_buildings']} |",
        f"| search through Telegram p50 / p99 ms | {r['search_e2e_p50_ms_10k_buildings']} / "
        f"{r['search_e2e_p99_ms_10k_buildings']} |",
        f"| open a 500-apartment building, median / max ms | "
        f"{r['open_building_ms_500_apartments']} / {r['open_building_max_ms_500_apartments']} |",
        f"| per-reading latency p50 ms: small DB ({r['small_db_slots']} slots) / 1M DB | "
        f"{r['reading_p50_ms_small_db']} / {r['reading_p50_ms_1m_db']} |",
        f"| per-reading CPU ms of the bot: small DB / 1M DB | "
        f"{r['reading_cpu_ms_small_db']} / {r['reading_cpu_ms_1m_db']} |",
        f"| peak RSS MB: small DB / 1M DB / echo | {r['peak_rss_mb_small_db']} / "
        f"{r['peak_rss_mb_1m_slots']} / {r['echo_peak_rss_mb']} |",
        "",
        f"Seeding the large database took {r['scale_seed_seconds']} s.",
        "",
    ]
    return lines


def keep_logs(work: Path, to: Path) -> None:
    to.mkdir(parents=True, exist_ok=True)
    for log in work.glob("*.log"):
        shutil.copy(log, to / log.name)
    print(f"bench: failed; the processes' logs are in {to}", flush=True)


async def bench(config: Config, profile: bool, parts: set[str], out: Path) -> dict[str, Any]:
    """Run the parts asked for ("polling", "webhook"); the figures of the run.

    If the run fails, the bot processes' logs are copied to out/logs.
    """
    started = time.monotonic()
    HARNESS_GC.longest = 0.0
    results: dict[str, Any] = {
        "smoke": config.smoke,
        "config": asdict(config),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        try:
            async with FakeTelegram(bot_token=BOT_TOKEN) as tg:
                steal = results["cpu_steal_share"] = {}
                if "polling" in parts:
                    part = Steal()
                    for reference in references(work):
                        await bench_reference(tg, config, work, results, reference)
                    steal["reference_bots"], part = part.share(), Steal()
                    await bench_bot_small(tg, config, work, results, profile)
                    steal["bot_small_db"], part = part.share(), Steal()
                    await bench_echo_after(tg, config, work, results)
                    steal["echo_after_bot"], part = part.share(), Steal()
                    await bench_bot_scale(tg, config, work, results)
                    steal["bot_1m_slots"] = part.share()
                if "webhook" in parts:
                    part = Steal()
                    await bench_webhook(tg, config, work, results)
                    steal["webhook"] = part.share()
        except BaseException:
            keep_logs(work, out / "logs")
            raise
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["harness_gc_pause_max_ms"] = ms(HARNESS_GC.longest)
    results["run_seconds"] = round(time.monotonic() - started, 1)
    results["machine"] = machine()
    if "polling" in parts:
        derive(results)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--smoke", action="store_true", help="tiny counts (CI): checks it runs")
    parser.add_argument("--out", type=Path, default=None, help="where results.json/.md go")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the bot at 10 inspectors (profile-bot.txt)"
    )
    parser.add_argument(
        "--webhook",
        action="store_true",
        help="webhook mode in a smoke run too (a full run has it unless --no-webhook)",
    )
    parser.add_argument(
        "--no-webhook",
        action="store_true",
        help="leave out webhook mode: 1 vs 2 instances on PostgreSQL + Redis (webhook.py)",
    )
    parser.add_argument(
        "--webhook-only",
        action="store_true",
        help="only the webhook part; its figures replace those in the existing results",
    )
    args = parser.parse_args(argv)
    config = SMOKE if args.smoke else Config()
    out = args.out or HERE
    if args.smoke and args.out is None:
        parser.error("--smoke needs --out: a smoke run must not replace the committed results")
    parts = {"webhook"} if args.webhook_only else {"polling"}
    if args.webhook or not (args.smoke or args.no_webhook):
        parts.add("webhook")
    from tasks import ServiceUnavailable

    try:
        with services() if "webhook" in parts else contextlib.nullcontext():
            results = asyncio.run(bench(config, args.profile, parts, out))
    except ServiceUnavailable as exc:
        print(f"bench: no PostgreSQL/Redis for webhook mode ({exc}); use --no-webhook")
        return 1
    out.mkdir(parents=True, exist_ok=True)
    if args.webhook_only:
        results = merged_webhook_figures(out / "results.json", results)
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    (out / "results.md").write_text(markdown(results))
    required = [
        *(REQUIRED_KEYS if "polling" in parts else ()),
        *(WEBHOOK_KEYS if "webhook" in parts else ()),
    ]
    missing = [key for key in required if not isinstance(results.get(key), int | float)]
    print(f"bench: done in {results['run_seconds']} s; {out / 'results.md'}", flush=True)
    if missing:
        print(f"bench: missing figures: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0
