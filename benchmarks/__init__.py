"""The performance benchmark: the bot against an aiogram echo bot on the fake Bot API.

    python3 tasks.py bench            # the full run (a few minutes), writes results.*
    python3 tasks.py bench --smoke    # tiny counts, for CI: every figure, none of them meaningful

See benchmarks/run.py for what is measured and how.
"""
