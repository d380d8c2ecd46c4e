"""outbox lease and notification of submissions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_submissions_next_attempt_at", ["next_attempt_at"], unique=False)
    # Batches finished before the outbox worker existed were shown to the inspector
    # on the spot: they must not be announced again.
    op.execute(
        "UPDATE submissions SET notified_at = finished_at, next_attempt_at = NULL "
        "WHERE status <> 'pending'"
    )


def downgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_index("ix_submissions_next_attempt_at")
        batch_op.drop_column("notified_at")
        batch_op.drop_column("claimed_until")
        batch_op.drop_column("claimed_by")
