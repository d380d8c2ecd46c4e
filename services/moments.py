"""Moments read back from the database."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(moment: datetime) -> datetime:
    """The moment as an aware UTC datetime.

    SQLite hands timestamps back without an offset; every moment this project
    stores is UTC, so a naive one is UTC.
    """
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
