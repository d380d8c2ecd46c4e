"""Tables of the embedded billing backend (its own database, its own migrations).

Every table is prefixed `billing_` so that an operator may point
BILLING_DATABASE_URL at the same PostgreSQL database as the bot's DATABASE_URL
without a clash (the bot has an `accounts` table of its own).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Column sizes; template import checks them so that PostgreSQL never refuses a row.
LOGIN_MAX = 64
CITY_MAX = 100
STREET_MAX = 200
HOUSE_MAX = 50
APARTMENT_MAX = 50
SERIAL_MAX = 64
TARIFF_MAX = 20
VALUE_MAX = 32
IDEMPOTENCY_KEY_MAX = 255


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC (SQLite has no time zones; PostgreSQL does)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UtcDateTime column")
        value = value.astimezone(UTC)
        # SQLite compares the stored text: one fixed form (naive UTC) keeps it ordered.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AccountRow(Base):
    """A legal entity's portal account (the login the bot signs in with)."""

    __tablename__ = "billing_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(LOGIN_MAX), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    inn: Mapped[str | None] = mapped_column(String(12))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class TokenRow(Base):
    """An issued session token, stored only as its SHA-256."""

    __tablename__ = "billing_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("billing_accounts.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class LoginFailureRow(Base):
    """One failed login, for the per-login throttle (kept for unknown logins too)."""

    __tablename__ = "billing_login_failures"
    __table_args__ = (Index("ix_billing_login_failures_login_failed_at", "login", "failed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(LOGIN_MAX))
    failed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class BuildingRow(Base):
    """A multi-apartment building served by an account."""

    __tablename__ = "billing_buildings"
    __table_args__ = (
        UniqueConstraint("account_id", "city", "street", "house"),
        Index("ix_billing_buildings_account_id_position", "account_id", "position"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("billing_accounts.id", ondelete="CASCADE"))
    city: Mapped[str] = mapped_column(String(CITY_MAX))
    street: Mapped[str] = mapped_column(String(STREET_MAX))
    house: Mapped[str] = mapped_column(String(HOUSE_MAX))
    address: Mapped[str] = mapped_column(String(CITY_MAX + STREET_MAX + HOUSE_MAX + 4))
    position: Mapped[int] = mapped_column(Integer)


class SlotRow(Base):
    """One value to enter: a single-tariff meter, or one zone of a multi-tariff meter.

    `tariff` is '' for a single-tariff meter (not NULL) so that the unique
    constraint also holds for those: NULLs never collide in SQL.
    """

    __tablename__ = "billing_slots"
    __table_args__ = (
        UniqueConstraint("building_id", "apartment", "serial_number", "tariff"),
        Index("ix_billing_slots_building_id_position", "building_id", "position"),
        CheckConstraint("digits BETWEEN 1 AND 12", name="digits"),
        CheckConstraint("fraction_digits BETWEEN 0 AND 3", name="fraction_digits"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("billing_buildings.id", ondelete="CASCADE"))
    apartment: Mapped[str] = mapped_column(String(APARTMENT_MAX))
    serial_number: Mapped[str] = mapped_column(String(SERIAL_MAX))
    tariff: Mapped[str] = mapped_column(String(TARIFF_MAX), default="")
    digits: Mapped[int] = mapped_column(Integer)
    fraction_digits: Mapped[int] = mapped_column(Integer, default=0)
    previous_value: Mapped[str | None] = mapped_column(String(VALUE_MAX))
    previous_date: Mapped[date | None] = mapped_column(Date)
    position: Mapped[int] = mapped_column(Integer)


class SubmissionRow(Base):
    """One accepted POST of readings, and at once its idempotency record.

    The key, the body's hash and the answer are written in the same transaction
    as the readings, so a replay can never see readings without an answer or the
    other way round; that is why there is no separate idempotency table.
    """

    __tablename__ = "billing_submissions"
    __table_args__ = (UniqueConstraint("account_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("billing_accounts.id", ondelete="CASCADE"))
    building_id: Mapped[int] = mapped_column(
        ForeignKey("billing_buildings.id", ondelete="CASCADE"), index=True
    )
    idempotency_key: Mapped[str] = mapped_column(String(IDEMPOTENCY_KEY_MAX))
    body_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[str] = mapped_column(Text, default="")
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ReadingRow(Base):
    """The accepted reading of a slot in a period; a later one replaces it."""

    __tablename__ = "billing_readings"
    __table_args__ = (UniqueConstraint("slot_id", "period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slot_id: Mapped[int] = mapped_column(ForeignKey("billing_slots.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(7))
    value: Mapped[str] = mapped_column(String(VALUE_MAX))
    taken_at: Mapped[datetime] = mapped_column(UtcDateTime())
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("billing_submissions.id", ondelete="CASCADE"), index=True
    )
