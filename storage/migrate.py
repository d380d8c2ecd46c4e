"""Apply the bot's Alembic migrations from code (at start and in tests).

Alembic is imported only when there is a migration to run (schema_revisions).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from schema_revisions import is_current

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"
# pg_advisory_xact_lock key: several instances starting at once migrate one at a
# time; the later ones find the schema current and do nothing.
MIGRATION_LOCK = 7_352_001


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at storage/migrations (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def revisions() -> list[str]:
    """Every revision id, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


async def _run(engine: AsyncEngine, action: str, target: str) -> None:
    from alembic import command

    def apply(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config = alembic_config()
        config.attributes["connection"] = connection
        getattr(command, action)(config, target)

    async with engine.connect() as connection:
        await connection.run_sync(apply)
        await connection.commit()


async def upgrade_database(engine: AsyncEngine, target: str = "head") -> None:
    """Upgrade the database to `target` (default: the newest revision)."""
    if target == "head" and await is_current(engine, VERSION_TABLE, MIGRATIONS / "versions"):
        return
    await _run(engine, "upgrade", target)


async def downgrade_database(engine: AsyncEngine, target: str) -> None:
    """Downgrade the database to `target` (a revision id or 'base')."""
    await _run(engine, "downgrade", target)
