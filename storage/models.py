"""The bot's own tables (billing data lives behind billing_client, not here)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Role(StrEnum):
    ADMIN = "admin"
    INSPECTOR = "inspector"


class Account(Base):
    """A company's billing account as linked through the bot.

    The password is kept only encrypted (SECRET_KEY), so that the bot can renew
    an expired billing session on the company's behalf.
    """

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    inn: Mapped[str | None] = mapped_column(String(20))
    login: Mapped[str] = mapped_column(String(200), index=True)
    password_encrypted: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TelegramUser(Base):
    """A Telegram user and the account it is linked to (if any)."""

    __tablename__ = "telegram_users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    full_name: Mapped[str] = mapped_column(String(300), default="")
    username: Mapped[str | None] = mapped_column(String(64))
    account_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True
    )
    role: Mapped[Role | None] = mapped_column(String(16))
    show_previous: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    linked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class FsmRecord(Base):
    """aiogram FSM state and data of one storage key, as JSON (never pickle)."""

    __tablename__ = "fsm_records"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class LoginAttempt(Base):
    """A login tried through the bot, to throttle guessing (per user and per login)."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_user_at", "telegram_user_id", "attempted_at"),
        Index("ix_login_attempts_login_at", "login_key", "attempted_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger)
    # sha256 of the case-folded login: the throttle needs equality, not the login itself
    login_key: Mapped[str] = mapped_column(String(64))
    succeeded: Mapped[bool] = mapped_column(Boolean)
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SlotStatus(StrEnum):
    EMPTY = "empty"
    FILLED = "filled"  # a value waits to be sent
    SKIPPED = "skipped"
    SENDING = "sending"  # part of a batch whose outcome is not known yet
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # billing refused it: the inspector corrects and sends again


class Draft(Base):
    """The work on one building for one period, shared by every inspector of the account."""

    __tablename__ = "drafts"
    __table_args__ = (UniqueConstraint("account_id", "building_id", "period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    building_id: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(7))
    address: Mapped[str] = mapped_column(String(500))
    # For the summary's template file (issue 5); empty on drafts made before it.
    city: Mapped[str] = mapped_column(String(100), default="", server_default="")
    street: Mapped[str] = mapped_column(String(300), default="", server_default="")
    house: Mapped[str] = mapped_column(String(50), default="", server_default="")
    apartments: Mapped[int] = mapped_column(Integer, default=0)
    slots_total: Mapped[int] = mapped_column(Integer, default=0)
    refreshed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DraftSlot(Base):
    """One value to enter (a meter, or one tariff zone of it), in walking order."""

    __tablename__ = "draft_slots"
    __table_args__ = (
        UniqueConstraint("draft_id", "meter_id"),
        # One slot per place in the walk: the card and the value typed on it find the
        # slot by its position.
        UniqueConstraint("draft_id", "position"),
        Index("ix_draft_slots_draft_status", "draft_id", "status", "position"),
        Index("ix_draft_slots_submission", "submission_id"),
        Index("ix_draft_slots_source", "entered_by", "source_message_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("drafts.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    meter_id: Mapped[str] = mapped_column(String(64))
    apartment: Mapped[str] = mapped_column(String(50))
    serial_number: Mapped[str] = mapped_column(String(64))
    digits: Mapped[int] = mapped_column(Integer)
    fraction_digits: Mapped[int] = mapped_column(Integer, default=0)
    tariff: Mapped[str | None] = mapped_column(String(32))
    previous_value: Mapped[str | None] = mapped_column(String(32))
    previous_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[SlotStatus] = mapped_column(String(16), default=SlotStatus.EMPTY)
    value: Mapped[str | None] = mapped_column(String(32))
    skip_reason: Mapped[str | None] = mapped_column(String(32))
    warning: Mapped[str | None] = mapped_column(String(32))  # kept after a confirmed warning
    entered_by: Mapped[int | None] = mapped_column(BigInteger)
    entered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source_message_id: Mapped[int | None] = mapped_column(BigInteger)
    submission_id: Mapped[int | None] = mapped_column(Integer)
    rejection_code: Mapped[str | None] = mapped_column(String(32))
    rejection_message: Mapped[str | None] = mapped_column(String(500))


class SubmissionStatus(StrEnum):
    PENDING = "pending"  # written, not yet confirmed by billing
    SENT = "sent"
    FAILED = "failed"  # failed for good; its slots went back to the draft


class Submission(Base):
    """One batch for billing (an outbox row): written with its key before the first try."""

    __tablename__ = "submissions"
    __table_args__ = (
        Index("ix_submissions_status_next", "status", "next_attempt_at"),
        Index("ix_submissions_next_attempt_at", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("drafts.id", ondelete="CASCADE"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(36), unique=True)
    payload: Mapped[str] = mapped_column(Text)  # JSON list of readings, exactly as sent
    status: Mapped[SubmissionStatus] = mapped_column(String(16), default=SubmissionStatus.PENDING)
    created_by: Mapped[int] = mapped_column(BigInteger)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When the outbox worker is due to look at the row: the next send while it is
    # pending, the notification once it is finished; None when nothing is left to do.
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    billing_submission_id: Mapped[str | None] = mapped_column(String(64))
    accepted_count: Mapped[int] = mapped_column(Integer, default=0)
    rejected_count: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    # The outbox worker's lease: while it runs, no other worker (or instance) takes
    # the row; a crash leaves it to run out, and the row is taken up again.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the inspector was told the final outcome; a finished row without it is
    # told at the next chance (after a crash too).
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class GroupBinding(Base):
    """The group chat that receives an account's summaries (one per account)."""

    __tablename__ = "group_bindings"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    chat_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    title: Mapped[str] = mapped_column(String(300), default="")
    bound_by: Mapped[int | None] = mapped_column(BigInteger)
    bound_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Invite(Base):
    """A single-use, expiring invite link; only the code's sha256 is stored."""

    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_by: Mapped[int | None] = mapped_column(BigInteger)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class GroupPost(Base):
    """One message waiting for a group chat (a persistent queue, paced by the poster).

    A row is marked sent only after Telegram accepted the message, so a crash or a
    flood wait never loses a summary. `dedupe_key` makes enqueueing idempotent.
    """

    __tablename__ = "group_posts"
    __table_args__ = (Index("ix_group_posts_pending", "sent_at", "chat_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(100), unique=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    account_id: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str | None] = mapped_column(Text)  # HTML; the caption of a document
    document: Mapped[bytes | None] = mapped_column(LargeBinary)
    filename: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(300))


class InboxUpdate(Base):
    """A Telegram update stored before it is acknowledged, processed once, then marked done.

    A message that may hold a password is stored redacted (`redacted`, the content
    left out); its chat and message id stay so that it can be deleted after a crash.
    """

    __tablename__ = "inbox_updates"
    __table_args__ = (Index("ix_inbox_updates_done_at", "done_at"),)

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    payload: Mapped[str] = mapped_column(Text)  # the update as JSON (redacted when `redacted`)
    redacted: Mapped[bool] = mapped_column(Boolean, default=False)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Redacted rows only: when handling began and the sender's FSM state then, so that
    # after a crash the bot can tell "handled, not marked done" from "never handled".
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    state_at_start: Mapped[str | None] = mapped_column(String(255))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The instance handling the row, and until when: it renews the claim while it lives,
    # so a row whose claim ran out belongs to an instance that died and may be taken up.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
