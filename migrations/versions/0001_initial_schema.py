"""Initial schema: runs, videos, clips, scorer_configs, scores, scorer_failures.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column]:
    return [sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)]


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", UUID(as_uuid=True), primary_key=True, comment="vidqa run id"),
        sa.Column("flow_run_id", UUID(as_uuid=True), comment="Prefect flow-run id, when run under Prefect"),
        sa.Column("flow_name", sa.Text),
        sa.Column("source", sa.Text, nullable=False, comment="folder, glob, s3:// prefix or manifest"),
        sa.Column("parameters", JSONB, nullable=False, comment="flow parameters as given"),
        sa.Column("vidqa_version", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, comment="running | completed | failed"),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("n_videos", sa.Integer),
        sa.Column("n_scored", sa.Integer),
        sa.Column("n_skipped", sa.Integer),
        sa.Column("n_failed", sa.Integer),
        sa.Column("n_scores_written", sa.Integer),
    )
    op.create_index("ix_runs_flow_run_id", "runs", ["flow_run_id"])

    op.create_table(
        "videos",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("uri", sa.Text, nullable=False, comment="absolute path or s3:// URI"),
        sa.Column("content_id", sa.Text, nullable=False, comment="etag:<S3 ETag> or sha256:<hex of bytes>"),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("source_mtime", sa.Float, comment="local mtime when hashed; lets reruns skip rehashing"),
        sa.Column("status", sa.Text, nullable=False, comment="ok | failed"),
        sa.Column("failure_stage", sa.Text, comment="read | probe | decode"),
        sa.Column("failure_reason", sa.Text),
        sa.Column("failure_transient", sa.Boolean, comment="true: I/O error, a rerun retries"),
        sa.Column("container", sa.Text),
        sa.Column("duration_s", sa.Float, comment="stream duration, else container duration"),
        sa.Column("container_duration_s", sa.Float),
        sa.Column("stream_duration_s", sa.Float),
        sa.Column("start_time_s", sa.Float),
        sa.Column("fps_avg", sa.Float),
        sa.Column("fps_nominal", sa.Float),
        sa.Column("frame_count_declared", sa.Integer, comment="nb_frames from the container, if any"),
        sa.Column("frame_count", sa.Integer, comment="video packets counted by ffprobe"),
        sa.Column("width", sa.Integer, comment="stored width"),
        sa.Column("height", sa.Integer, comment="stored height"),
        sa.Column("display_width", sa.Integer, comment="after rotation and sample aspect ratio"),
        sa.Column("display_height", sa.Integer),
        sa.Column("rotation", sa.Integer, comment="degrees, display-matrix convention"),
        sa.Column("sample_aspect_ratio", sa.Text),
        sa.Column("video_codec", sa.Text),
        sa.Column("audio_codec", sa.Text),
        sa.Column("has_audio", sa.Boolean),
        sa.Column("bit_rate", sa.BigInteger),
        sa.Column("probe", JSONB, comment="the full ffprobe format/streams output"),
        sa.Column("first_run_id", UUID(as_uuid=True), sa.ForeignKey("runs.id", ondelete="SET NULL")),
        sa.Column("last_run_id", UUID(as_uuid=True), sa.ForeignKey("runs.id", ondelete="SET NULL")),
        *_timestamps(),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("uri", "content_id", name="uq_videos_uri_content"),
        sa.CheckConstraint("status IN ('ok', 'failed')", name="ck_videos_status"),
    )
    op.create_index("ix_videos_status", "videos", ["status"])
    op.create_index("ix_videos_content_id", "videos", ["content_id"])

    op.create_table(
        "clips",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("video_id", sa.BigInteger, sa.ForeignKey("videos.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.Text, nullable=False, comment="video (the whole video) | scene | window"),
        sa.Column("start_frame", sa.Integer, nullable=False),
        sa.Column("end_frame", sa.Integer, nullable=False, comment="exclusive"),
        sa.Column("start_time_s", sa.Float, nullable=False),
        sa.Column("end_time_s", sa.Float, nullable=False, comment="exclusive"),
        *_timestamps(),
        sa.UniqueConstraint("video_id", "kind", "start_frame", "end_frame", name="uq_clips_span"),
    )
    op.create_index("ix_clips_video_id", "clips", ["video_id"])

    op.create_table(
        "scorer_configs",
        sa.Column("config_hash", sa.Text, primary_key=True, comment="sha256 of the canonical config JSON"),
        sa.Column("scorer", sa.Text, nullable=False),
        sa.Column("config", JSONB, nullable=False),
        *_timestamps(),
    )

    op.create_table(
        "scores",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("clip_id", sa.BigInteger, sa.ForeignKey("clips.id", ondelete="CASCADE"), nullable=False),
        sa.Column("scorer", sa.Text, nullable=False),
        sa.Column("config_hash", sa.Text, sa.ForeignKey("scorer_configs.config_hash"), nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("value", sa.Float(precision=53), comment="NULL when undefined (see details)"),
        sa.Column("details", JSONB),
        sa.Column("run_id", UUID(as_uuid=True), sa.ForeignKey("runs.id", ondelete="SET NULL")),
        *_timestamps(),
        sa.UniqueConstraint("clip_id", "scorer", "config_hash", "metric", name="uq_scores_identity"),
    )
    op.create_index("ix_scores_metric_value", "scores", ["metric", "value"])
    op.create_index("ix_scores_scorer_config", "scores", ["scorer", "config_hash"])
    op.create_index("ix_scores_run_id", "scores", ["run_id"])

    op.create_table(
        "scorer_failures",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("clip_id", sa.BigInteger, sa.ForeignKey("clips.id", ondelete="CASCADE"), nullable=False),
        sa.Column("scorer", sa.Text, nullable=False),
        sa.Column("config_hash", sa.Text, sa.ForeignKey("scorer_configs.config_hash"), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("run_id", UUID(as_uuid=True), sa.ForeignKey("runs.id", ondelete="SET NULL")),
        *_timestamps(),
        sa.UniqueConstraint("clip_id", "scorer", "config_hash", name="uq_scorer_failures_identity"),
    )


def downgrade() -> None:
    for table in ("scorer_failures", "scores", "scorer_configs", "clips", "videos", "runs"):
        op.drop_table(table)
