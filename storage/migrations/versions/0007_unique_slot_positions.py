"""one slot per position in a draft

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _separate_shared_positions()
    # The unique constraint's index serves the lookups the plain one served.
    with op.batch_alter_table("draft_slots", schema=None) as batch_op:
        batch_op.drop_index("ix_draft_slots_draft_position")
        batch_op.create_unique_constraint(
            op.f("uq_draft_slots_draft_id_position"), ["draft_id", "position"]
        )


def downgrade() -> None:
    with op.batch_alter_table("draft_slots", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_draft_slots_draft_id_position"), type_="unique")
        batch_op.create_index(
            "ix_draft_slots_draft_position", ["draft_id", "position"], unique=False
        )


def _separate_shared_positions() -> None:
    """Move all but one slot of each shared position to the end of its draft's walk.

    Before this revision, a meter billing stopped listing kept its position when a
    value waited in it, and the meter listed there next shared it. Which of the two is
    still listed, only billing knows: the newest row (highest id) stays, being most
    often the meter installed instead; the older ones go after the draft's last slot,
    with their values, as the bot places them now. The next refresh of the draft from
    billing puts every slot in its place anyway.
    """
    connection = op.get_bind()
    shared = connection.execute(
        sa.text(
            "SELECT s.id, s.draft_id FROM draft_slots s WHERE EXISTS ("
            "SELECT 1 FROM draft_slots o WHERE o.draft_id = s.draft_id"
            " AND o.position = s.position AND o.id > s.id)"
            " ORDER BY s.draft_id, s.position, s.id"
        )
    ).all()
    if not shared:
        return
    drafts = sorted({draft_id for _, draft_id in shared})
    ends: dict[int, int] = dict(
        connection.execute(
            sa.text(
                "SELECT draft_id, MAX(position) FROM draft_slots"
                " WHERE draft_id IN :drafts GROUP BY draft_id"
            ).bindparams(sa.bindparam("drafts", expanding=True)),
            {"drafts": drafts},
        ).all()
    )
    moves = []
    for slot_id, draft_id in shared:
        ends[draft_id] += 1
        moves.append({"id": slot_id, "position": ends[draft_id]})
    connection.execute(sa.text("UPDATE draft_slots SET position = :position WHERE id = :id"), moves)
