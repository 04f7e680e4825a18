"""Text inputs are part of a score's identity: scores.input_hash, score_inputs.

A video listed twice with different captions (or whose caption changed) gets a score per
text instead of one overwriting the other.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "score_inputs",
        sa.Column("input_hash", sa.Text, primary_key=True),
        sa.Column("inputs", JSONB, nullable=False, comment="the text fields a scorer read, e.g. candidate, reference"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        comment="what an input hash stands for",
    )
    for table, constraint, columns in (
        ("scores", "uq_scores_identity", ["clip_id", "scorer", "config_hash", "input_hash", "metric"]),
        ("scorer_failures", "uq_scorer_failures_identity", ["clip_id", "scorer", "config_hash", "input_hash"]),
    ):
        op.add_column(table, sa.Column(
            "input_hash", sa.Text, nullable=False, server_default="",
            comment="hash of the text inputs scored ('' for scorers that read no text)",
        ))
        op.drop_constraint(constraint, table, type_="unique")
        op.create_unique_constraint(constraint, table, columns)


def downgrade() -> None:
    for table, constraint, columns in (
        ("scores", "uq_scores_identity", ["clip_id", "scorer", "config_hash", "metric"]),
        ("scorer_failures", "uq_scorer_failures_identity", ["clip_id", "scorer", "config_hash"]),
    ):
        # The old identity holds one row per clip and scorer: keep the text-free ones.
        op.execute(f"DELETE FROM {table} WHERE input_hash <> ''")
        op.drop_constraint(constraint, table, type_="unique")
        op.create_unique_constraint(constraint, table, columns)
        op.drop_column(table, "input_hash")
    op.drop_table("score_inputs")
