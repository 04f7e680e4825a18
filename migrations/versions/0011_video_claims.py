"""Concurrent runs cooperate: a video being scored is claimed, and a run knows its process.

* ``video_claims``: one row per video's bytes (content id) some shard is scoring now. A shard
  claims a video before fetching it and releases it once its scores are written (or its
  failure recorded); a second run that meets a claimed video scores the rest of its shard
  first, then waits for the claim to go and finds the work done. The claim's lease is
  renewed while its process lives; a killed claimant's lease expires and the video is
  taken over.
* ``runs.host`` and ``runs.pid``: where the run's flow ran, so the next command on that host
  closes a run whose process is gone at once (not only when its heartbeat goes stale).

Downgrade drops both (claims are transient: nothing stored is lost).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COMMENTS = {
    "video_claims": ("Videos some shard is scoring now (transient): a second run over the same bytes waits for "
                     "the claim to go instead of scoring them again; a lease not renewed expires.", {
        "content_id": "the claimed video's bytes (videos.content_id)",
        "holder": "the claiming shard: run, shard, host and process",
        "run_id": "the run whose shard holds the claim",
        "claimed_at": "when the claim was taken",
        "expires_at": "when the claim lapses unless its holder renews it (VIDQA_CLAIM_LEASE_S)",
    }),
    "runs": (None, {
        "host": "the host the run's flow ran on",
        "pid": "the process id of the run's flow on that host (a run whose process is gone is closed as crashed)",
    }),
}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def upgrade() -> None:
    op.create_table(
        "video_claims",
        sa.Column("content_id", sa.Text, primary_key=True),
        sa.Column("holder", sa.Text, nullable=False),
        sa.Column("run_id", UUID(as_uuid=True), sa.ForeignKey("runs.id", ondelete="CASCADE")),
        sa.Column("claimed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_video_claims_holder", "video_claims", ["holder"])
    op.add_column("runs", sa.Column("host", sa.Text))
    op.add_column("runs", sa.Column("pid", sa.Integer))
    for table, (about, cols) in COMMENTS.items():
        if about:
            op.execute(f"COMMENT ON TABLE {table} IS {_quote(about)}")
        for column, text in cols.items():
            op.execute(f"COMMENT ON COLUMN {table}.{column} IS {_quote(text)}")


def downgrade() -> None:
    op.drop_column("runs", "pid")
    op.drop_column("runs", "host")
    op.drop_table("video_claims")
