"""argon2 with tiny costs for the billing a test runs in its own process.

The tests check behaviour, not hashing strength: argon2-cffi's default costs (64 MiB,
3 passes, 4 lanes) take about a second per login on a loaded 2-core CI machine, and
the suite logs in a few hundred times. A bot run as a separate process (`python
bot.py`, the fault suite's forked bots) keeps the production costs.
"""

from __future__ import annotations

from argon2 import PasswordHasher


def fast_hasher() -> PasswordHasher:
    """argon2id with the smallest costs: 1 pass, 1 MiB, 1 lane."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
