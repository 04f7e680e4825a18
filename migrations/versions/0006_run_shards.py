"""run_shards: one row per shard of a fanned-out run (a `score-shard` flow run on a work
pool). The shard's flow writes its per-video outcomes here, so the parent run can aggregate
them from any machine, and operators can follow a large job with SQL.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_shards",
        sa.Column("run_id", UUID(as_uuid=True), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("shard_index", sa.Integer, primary_key=True, comment="position of the shard in the run's listing"),
        sa.Column("n_videos", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False, comment="submitted, completed or failed"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0",
                  comment="flow runs submitted for this shard (a crashed or failed one is resubmitted)"),
        sa.Column("flow_run_id", UUID(as_uuid=True), comment="the latest score-shard flow run of this shard"),
        sa.Column("host", sa.Text, comment="machine that completed the shard"),
        sa.Column("outcomes", JSONB, comment="per-video outcomes written by the shard's flow"),
        sa.Column("error", sa.Text, comment="why the shard failed after its attempts"),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        comment="shards of runs fanned out over a work pool",
    )


def downgrade() -> None:
    op.drop_table("run_shards")
