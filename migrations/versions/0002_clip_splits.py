"""Clips from scene detection and fixed windows: split identity on clips, video_splits.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "clips",
        sa.Column("split_hash", sa.Text, nullable=False, server_default="",
                  comment="identity of the split settings that made this clip; '' for the whole video"),
    )
    op.drop_constraint("uq_clips_span", "clips", type_="unique")
    op.create_unique_constraint(
        "uq_clips_span", "clips", ["video_id", "split_hash", "kind", "start_frame", "end_frame"]
    )
    op.create_table(
        "video_splits",
        sa.Column("video_id", sa.BigInteger, sa.ForeignKey("videos.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("split_hash", sa.Text, primary_key=True),
        sa.Column("method", sa.Text, nullable=False, comment="scenes | windows"),
        sa.Column("config", JSONB, nullable=False, comment="split settings"),
        sa.Column("n_clips", sa.Integer, nullable=False, comment="clips kept (0 when no piece was long enough)"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        comment="one row per video and split settings: the split ran, even when it kept no clip",
    )


def downgrade() -> None:
    op.drop_table("video_splits")
    # Clips of splits have no place in the old schema; their scores go with them.
    op.execute("DELETE FROM clips WHERE split_hash <> ''")
    op.drop_constraint("uq_clips_span", "clips", type_="unique")
    op.create_unique_constraint("uq_clips_span", "clips", ["video_id", "kind", "start_frame", "end_frame"])
    op.drop_column("clips", "split_hash")
