"""The benchmark's smoke run: every figure of results.json is produced (not a speed test).

`python -m benchmarks --smoke` starts the fake Bot API server, the echo bot, the floor bot
(each strength) and the real bot twice (small and "large" database) with tiny counts; the
figures mean nothing, the point is that the full run (`python3 tasks.py bench`) cannot
silently rot. The polling parts use their own SQLite files whatever the suite's
databases, so they run in the first pass only; the second pass (PostgreSQL + Redis
given) runs the webhook part alone: 1 and 2 instances.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from benchmarks.run import FLOOR_LABELS, FLOORS, REQUIRED_KEYS, WEBHOOK_KEYS
from tests.harness.databases import on_postgresql

ROOT = Path(__file__).resolve().parents[1]


def smoke_run(out: Path, *options: str) -> dict[str, Any]:
    """`python -m benchmarks --smoke` into `out`; its results.json."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out), *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results: dict[str, Any] = json.loads((out / "results.json").read_text())
    assert results["smoke"] is True
    return results


def assert_numbers(results: dict[str, Any], required: Iterable[str]) -> None:
    not_numbers = {
        key: results.get(key)
        for key in required
        if isinstance(results.get(key), bool) or not isinstance(results.get(key), int | float)
    }
    assert not not_numbers, f"figures missing or not numbers: {not_numbers}"


@pytest.mark.no_services
@pytest.mark.duration(90)
@pytest.mark.timeout(900)
def test_smoke_run_writes_every_figure(tmp_path: Path) -> None:
    results = smoke_run(tmp_path)
    assert_numbers(results, REQUIRED_KEYS)
    assert results["readings_entered"] > 0
    assert results["api_errors"] == 0, results["api_errors_by_kind"]
    # The floor bot (benchmarks/floor_bot.py) ran in every strength, every call succeeding.
    table = (tmp_path / "results.md").read_text()
    for floor, _kind in FLOORS:
        assert isinstance(results[f"{floor}_cpu_per_update_ratio_vs_echo"], int | float)
        assert isinstance(results[f"{floor}_p99_ms_paced_100_inspectors"], int | float)
        assert results[f"{floor}_api_errors"] == 0
        assert f"| {FLOOR_LABELS[floor]} |" in table
    # The echo's 10-user window is measured again right after the bot's part; the CPU
    # ratio divides by the mean of the two.
    bot, before, after = (
        results[key]
        for key in (
            "cpu_ms_per_update_10_inspectors",
            "echo_cpu_ms_per_update_10_inspectors",
            "echo_after_cpu_ms_per_update_10_inspectors",
        )
    )
    assert after > 0
    assert results["cpu_per_update_ratio_vs_echo"] == round(bot / round((before + after) / 2, 3), 2)
    assert "just after it" in table
    # The harness reports its own longest GC pause in the timed windows.
    assert isinstance(results["harness_gc_pause_max_ms"], int | float)
    assert "garbage-collector pause" in table
    # The host's steal time is reported per part: absolute figures fall with it.
    parts = {"reference_bots", "bot_small_db", "echo_after_bot", "bot_1m_slots"}
    assert parts <= set(results["cpu_steal_share"])
    assert "took away (steal)" in table
    # The paced run is inspectors at their meters, typing values.
    assert results["paced_updates_by_kind"].get("value", 0) > 0
    # Its latency by kind of step, and over typing at a meter alone.
    assert results["paced_latency_by_kind"]["value"]["count"] > 0
    assert isinstance(results["p99_ms_paced_typing"], int | float)
    assert "| value |" in table and "| paced, typing at a meter alone: p99 ms |" in table
    assert results["machine"]["aiogram"]
    assert "| Bot API calls per entered reading |" in table
    # Flat per-reading cost, also as the bot's CPU time (steal barely moves it).
    assert results["reading_cpu_ms_small_db"] > 0 and results["reading_cpu_ms_1m_db"] > 0
    assert "| per-reading CPU, 1M vs small DB |" in table


@pytest.mark.duration(40)
@pytest.mark.timeout(900)
def test_smoke_webhook_part_on_postgresql_and_redis(tmp_path: Path) -> None:
    if not (on_postgresql() and os.environ.get("TEST_REDIS_URL")):
        pytest.skip("webhook mode needs PostgreSQL and Redis (the suite's second pass)")
    results = smoke_run(tmp_path, "--webhook-only")
    assert_numbers(results, WEBHOOK_KEYS)
    assert results["webhook_failed_deliveries_2_instances"] == 0
    assert "2 vs 1 instances" in (tmp_path / "results.md").read_text()
