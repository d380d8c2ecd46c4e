"""billing schema: accounts, tokens, buildings, slots, submissions, readings

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("inn", sa.String(length=12), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_accounts")),
        sa.UniqueConstraint("login", name=op.f("uq_billing_accounts_login")),
    )
    op.create_table(
        "billing_login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_login_failures")),
    )
    with op.batch_alter_table("billing_login_failures", schema=None) as batch_op:
        batch_op.create_index(
            "ix_billing_login_failures_login_failed_at", ["login", "failed_at"], unique=False
        )

    op.create_table(
        "billing_buildings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("city", sa.String(length=100), nullable=False),
        sa.Column("street", sa.String(length=200), nullable=False),
        sa.Column("house", sa.String(length=50), nullable=False),
        sa.Column("address", sa.String(length=354), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["billing_accounts.id"],
            name=op.f("fk_billing_buildings_account_id_billing_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_buildings")),
        sa.UniqueConstraint(
            "account_id",
            "city",
            "street",
            "house",
            name=op.f("uq_billing_buildings_account_id_city_street_house"),
        ),
    )
    with op.batch_alter_table("billing_buildings", schema=None) as batch_op:
        batch_op.create_index(
            "ix_billing_buildings_account_id_position", ["account_id", "position"], unique=False
        )

    op.create_table(
        "billing_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["billing_accounts.id"],
            name=op.f("fk_billing_tokens_account_id_billing_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_billing_tokens_token_hash")),
    )
    with op.batch_alter_table("billing_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_billing_tokens_account_id"), ["account_id"], unique=False
        )

    op.create_table(
        "billing_slots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("building_id", sa.Integer(), nullable=False),
        sa.Column("apartment", sa.String(length=50), nullable=False),
        sa.Column("serial_number", sa.String(length=64), nullable=False),
        sa.Column("tariff", sa.String(length=20), nullable=False),
        sa.Column("digits", sa.Integer(), nullable=False),
        sa.Column("fraction_digits", sa.Integer(), nullable=False),
        sa.Column("previous_value", sa.String(length=32), nullable=True),
        sa.Column("previous_date", sa.Date(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.CheckConstraint("digits BETWEEN 1 AND 12", name=op.f("ck_billing_slots_digits")),
        sa.CheckConstraint(
            "fraction_digits BETWEEN 0 AND 3", name=op.f("ck_billing_slots_fraction_digits")
        ),
        sa.ForeignKeyConstraint(
            ["building_id"],
            ["billing_buildings.id"],
            name=op.f("fk_billing_slots_building_id_billing_buildings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_slots")),
        sa.UniqueConstraint(
            "building_id",
            "apartment",
            "serial_number",
            "tariff",
            name=op.f("uq_billing_slots_building_id_apartment_serial_number_tariff"),
        ),
    )
    with op.batch_alter_table("billing_slots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_billing_slots_building_id_position", ["building_id", "position"], unique=False
        )

    op.create_table(
        "billing_submissions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("building_id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["billing_accounts.id"],
            name=op.f("fk_billing_submissions_account_id_billing_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["building_id"],
            ["billing_buildings.id"],
            name=op.f("fk_billing_submissions_building_id_billing_buildings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_submissions")),
        sa.UniqueConstraint(
            "account_id",
            "idempotency_key",
            name=op.f("uq_billing_submissions_account_id_idempotency_key"),
        ),
    )
    with op.batch_alter_table("billing_submissions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_billing_submissions_building_id"), ["building_id"], unique=False
        )

    op.create_table(
        "billing_readings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slot_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("value", sa.String(length=32), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["slot_id"],
            ["billing_slots.id"],
            name=op.f("fk_billing_readings_slot_id_billing_slots"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["billing_submissions.id"],
            name=op.f("fk_billing_readings_submission_id_billing_submissions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_readings")),
        sa.UniqueConstraint("slot_id", "period", name=op.f("uq_billing_readings_slot_id_period")),
    )
    with op.batch_alter_table("billing_readings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_billing_readings_submission_id"), ["submission_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("billing_readings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_readings_submission_id"))

    op.drop_table("billing_readings")
    with op.batch_alter_table("billing_submissions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_submissions_building_id"))

    op.drop_table("billing_submissions")
    with op.batch_alter_table("billing_slots", schema=None) as batch_op:
        batch_op.drop_index("ix_billing_slots_building_id_position")

    op.drop_table("billing_slots")
    with op.batch_alter_table("billing_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_billing_tokens_account_id"))

    op.drop_table("billing_tokens")
    with op.batch_alter_table("billing_buildings", schema=None) as batch_op:
        batch_op.drop_index("ix_billing_buildings_account_id_position")

    op.drop_table("billing_buildings")
    with op.batch_alter_table("billing_login_failures", schema=None) as batch_op:
        batch_op.drop_index("ix_billing_login_failures_login_failed_at")

    op.drop_table("billing_login_failures")
    op.drop_table("billing_accounts")
