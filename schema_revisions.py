"""Is a database at its newest Alembic revision? Answered without importing Alembic.

Alembic (with Mako) costs a process ~10 MB that stays once imported; a bot starting
on a database that is already current needs only the version table and the ids in
the migration scripts. Used by storage.migrate and billing_client.embedded.db.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import String, column, inspect, select, table
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

# `revision: str = "0006"` and `down_revision: str | None = "0005"` (or a tuple of
# ids after a merge, or None), as Alembic's script template writes them.
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\b[^=\n]*=(.*)$", re.MULTILINE)
_QUOTED = re.compile(r"""["']([^"']+)["']""")


def head_revisions(versions: Path) -> set[str]:
    """The ids of the scripts in `versions` that no other script revises."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for script in versions.glob("*.py"):
        for name, value in _ASSIGNMENT.findall(script.read_text(encoding="utf-8")):
            ids = _QUOTED.findall(value)
            (revisions if name == "revision" else revised).update(ids)
    return revisions - revised


async def is_current(engine: AsyncEngine, version_table: str, versions: Path) -> bool:
    """True when the database's version table holds exactly the newest revisions."""

    def stamped(connection: Connection) -> set[str]:
        if not inspect(connection).has_table(version_table):
            return set()
        version = column("version_num", String)
        return set(connection.execute(select(version).select_from(table(version_table))).scalars())

    async with engine.connect() as connection:
        current = await connection.run_sync(stamped)
    return bool(current) and current == head_revisions(versions)
