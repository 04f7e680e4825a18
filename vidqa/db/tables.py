"""The schema as SQLAlchemy Core tables, for queries.

Migrations in ``migrations/versions`` are the only way the schema changes; a test checks
that these definitions match what the migrations create.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

metadata = sa.MetaData()

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("flow_run_id", UUID(as_uuid=True)),
    sa.Column("flow_name", sa.Text),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("parameters", JSONB, nullable=False),
    sa.Column("vidqa_version", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("n_videos", sa.Integer),
    sa.Column("n_scored", sa.Integer),
    sa.Column("n_skipped", sa.Integer),
    sa.Column("n_failed", sa.Integer),
    sa.Column("n_scores_written", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
    sa.Column("host", sa.Text),
    sa.Column("pid", sa.Integer),
)

run_shards = sa.Table(
    "run_shards",
    metadata,
    sa.Column("run_id", UUID(as_uuid=True), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("shard_index", sa.Integer, primary_key=True),
    sa.Column("n_videos", sa.Integer, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("flow_run_id", UUID(as_uuid=True)),
    sa.Column("host", sa.Text),
    sa.Column("outcomes", JSONB),
    sa.Column("error", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

videos = sa.Table(
    "videos",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("uri", sa.Text, nullable=False),
    sa.Column("content_id", sa.Text, nullable=False),
    sa.Column("size_bytes", sa.BigInteger),
    sa.Column("source_mtime", sa.Float),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("failure_stage", sa.Text),
    sa.Column("failure_reason", sa.Text),
    sa.Column("failure_transient", sa.Boolean),
    sa.Column("container", sa.Text),
    sa.Column("duration_s", sa.Float),
    sa.Column("container_duration_s", sa.Float),
    sa.Column("stream_duration_s", sa.Float),
    sa.Column("start_time_s", sa.Float),
    sa.Column("fps_avg", sa.Float),
    sa.Column("fps_nominal", sa.Float),
    sa.Column("frame_count_declared", sa.Integer),
    sa.Column("frame_count", sa.Integer),
    sa.Column("width", sa.Integer),
    sa.Column("height", sa.Integer),
    sa.Column("display_width", sa.Integer),
    sa.Column("display_height", sa.Integer),
    sa.Column("rotation", sa.Integer),
    sa.Column("sample_aspect_ratio", sa.Text),
    sa.Column("video_codec", sa.Text),
    sa.Column("audio_codec", sa.Text),
    sa.Column("has_audio", sa.Boolean),
    sa.Column("bit_rate", sa.BigInteger),
    sa.Column("probe", JSONB),
    sa.Column("first_run_id", UUID(as_uuid=True), sa.ForeignKey("runs.id", ondelete="SET NULL")),
    sa.Column("last_run_id", UUID(as_uuid=True), sa.ForeignKey("runs.id", ondelete="SET NULL")),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.UniqueConstraint("uri", "content_id", name="uq_videos_uri_content"),
    # One row per content (migration 0009): the same bytes under another URI are a location.
    sa.Index("uq_videos_content", "content_id", unique=True, postgresql_where=sa.text("content_id <> ''")),
)

video_locations = sa.Table(
    "video_locations",
    metadata,
    sa.Column("video_id", sa.BigInteger, sa.ForeignKey("videos.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("uri", sa.Text, primary_key=True),
    sa.Column("size_bytes", sa.BigInteger),
    sa.Column("source_mtime", sa.Float),
    sa.Column("first_run_id", UUID(as_uuid=True), sa.ForeignKey("runs.id", ondelete="SET NULL")),
    sa.Column("last_run_id", UUID(as_uuid=True), sa.ForeignKey("runs.id", ondelete="SET NULL")),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Index("ix_video_locations_uri", "uri"),
)

video_claims = sa.Table(
    "video_claims",
    metadata,
    sa.Column("content_id", sa.Text, primary_key=True),
    sa.Column("holder", sa.Text, nullable=False),
    sa.Column("run_id", UUID(as_uuid=True), sa.ForeignKey("runs.id", ondelete="CASCADE")),
    sa.Column("claimed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_video_claims_holder", "holder"),
)

clips = sa.Table(
    "clips",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("video_id", sa.BigInteger, sa.ForeignKey("videos.id", ondelete="CASCADE"), nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("start_frame", sa.Integer, nullable=False),
    sa.Column("end_frame", sa.Integer, nullable=False),
    sa.Column("start_time_s", sa.Float, nullable=False),
    sa.Column("end_time_s", sa.Float, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("split_hash", sa.Text, nullable=False, server_default=""),
    sa.UniqueConstraint("video_id", "split_hash", "kind", "start_frame", "end_frame", name="uq_clips_span"),
)

video_splits = sa.Table(
    "video_splits",
    metadata,
    sa.Column("video_id", sa.BigInteger, sa.ForeignKey("videos.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("split_hash", sa.Text, primary_key=True),
    sa.Column("method", sa.Text, nullable=False),
    sa.Column("config", JSONB, nullable=False),
    sa.Column("n_clips", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

scorer_configs = sa.Table(
    "scorer_configs",
    metadata,
    sa.Column("config_hash", sa.Text, primary_key=True),
    sa.Column("scorer", sa.Text, nullable=False),
    sa.Column("config", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("summary", sa.Text),  # e.g. "technical v1 uniform:16 (3f2a9c1e)" (vidqa.scoring.provenance)
)

scores = sa.Table(
    "scores",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("clip_id", sa.BigInteger, sa.ForeignKey("clips.id", ondelete="CASCADE"), nullable=False),
    sa.Column("scorer", sa.Text, nullable=False),
    sa.Column("config_hash", sa.Text, sa.ForeignKey("scorer_configs.config_hash"), nullable=False),
    sa.Column("metric", sa.Text, nullable=False),
    sa.Column("value", sa.Float(precision=53)),
    sa.Column("details", JSONB),
    sa.Column("run_id", UUID(as_uuid=True), sa.ForeignKey("runs.id", ondelete="SET NULL")),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("input_hash", sa.Text, nullable=False, server_default=""),
    sa.UniqueConstraint("clip_id", "scorer", "config_hash", "input_hash", "metric", name="uq_scores_identity"),
)

scorer_failures = sa.Table(
    "scorer_failures",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("clip_id", sa.BigInteger, sa.ForeignKey("clips.id", ondelete="CASCADE"), nullable=False),
    sa.Column("scorer", sa.Text, nullable=False),
    sa.Column("config_hash", sa.Text, sa.ForeignKey("scorer_configs.config_hash"), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("run_id", UUID(as_uuid=True), sa.ForeignKey("runs.id", ondelete="SET NULL")),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("input_hash", sa.Text, nullable=False, server_default=""),
    sa.UniqueConstraint("clip_id", "scorer", "config_hash", "input_hash", name="uq_scorer_failures_identity"),
)

score_inputs = sa.Table(
    "score_inputs",
    metadata,
    sa.Column("input_hash", sa.Text, primary_key=True),
    sa.Column("inputs", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

# -- set-level metrics (migration 0005) ---------------------------------------------------

reference_sets = sa.Table(
    "reference_sets",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("video_key", sa.Text, nullable=False, server_default="video_path"),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

feature_sets = sa.Table(
    "feature_sets",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("set_key", sa.Text, nullable=False, unique=True),
    sa.Column("content_digest", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("detector", sa.Text, nullable=False),
    sa.Column("detector_file", sa.Text, nullable=False),
    sa.Column("detector_sha256", sa.Text, nullable=False),
    sa.Column("output", sa.Text, nullable=False),
    sa.Column("unit", sa.Text, nullable=False),
    sa.Column("n_frames", sa.Integer, nullable=False),
    sa.Column("subsample", sa.Integer, nullable=False),
    sa.Column("clip_offset", sa.Text, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("max_items", sa.Integer, nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("sampling_rules", sa.Integer, nullable=False),
    sa.Column("resize", sa.Text, nullable=False),
    sa.Column("covariance", sa.Text, nullable=False),
    sa.Column("n_members", sa.Integer, nullable=False),
    sa.Column("n_items", sa.Integer, nullable=False),
    sa.Column("n_short", sa.Integer, nullable=False),
    sa.Column("n_failed", sa.Integer, nullable=False),
    sa.Column("failures", JSONB, nullable=False),
    sa.Column("feature_dim", sa.Integer),
    sa.Column("mean", ARRAY(sa.Float(precision=53))),
    sa.Column("cov_trace", sa.Float(precision=53)),
    sa.Column("features_uri", sa.Text, nullable=False),
    sa.Column("features_sha256", sa.Text, nullable=False),
    sa.Column("features_bytes", sa.BigInteger, nullable=False),
    sa.Column("seconds", sa.Float),
    sa.Column("vidqa_version", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

metric_values = sa.Table(
    "metric_values",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("metric", sa.Text, nullable=False),
    sa.Column("quantity", sa.Text, nullable=False),
    sa.Column("value", sa.Float(precision=53)),
    sa.Column("unit", sa.Text, nullable=False),
    sa.Column("run_std", sa.Float(precision=53)),
    sa.Column("split_std", sa.Float(precision=53)),
    sa.Column("ci_low", sa.Float(precision=53)),
    sa.Column("ci_high", sa.Float(precision=53)),
    sa.Column("ci_level", sa.Float(precision=53)),
    sa.Column("n_boot", sa.Integer),
    sa.Column("num_runs", sa.Integer, nullable=False),
    sa.Column("run_values", ARRAY(sa.Float(precision=53)), nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("reference_name", sa.Text),
    sa.Column("reference_source", sa.Text),
    sa.Column("candidate_source", sa.Text, nullable=False),
    sa.Column("reference_set_ids", ARRAY(sa.BigInteger), nullable=False),
    sa.Column("candidate_set_ids", ARRAY(sa.BigInteger), nullable=False),
    sa.Column("detector", sa.Text, nullable=False),
    sa.Column("detector_sha256", sa.Text, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("n_frames", sa.Integer, nullable=False),
    sa.Column("subsample", sa.Integer, nullable=False),
    sa.Column("reference_offset", sa.Text),
    sa.Column("candidate_offset", sa.Text, nullable=False),
    sa.Column("n_real", sa.Integer),
    sa.Column("n_fake", sa.Integer, nullable=False),
    sa.Column("n_promised", sa.Integer, nullable=False),
    sa.Column("covariance", sa.Text, nullable=False),
    sa.Column("warning", sa.Text),
    sa.Column("details", JSONB, nullable=False),
    sa.Column("vidqa_version", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

embedding_models = sa.Table(
    "embedding_models",
    metadata,
    sa.Column("model_hash", sa.Text, primary_key=True),
    sa.Column("identity", JSONB, nullable=False),
    sa.Column("dim", sa.Integer, nullable=False),
    sa.Column("summary", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

clip_embeddings = sa.Table(
    "clip_embeddings",
    metadata,
    sa.Column("clip_id", sa.BigInteger, sa.ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("model_hash", sa.Text, sa.ForeignKey("embedding_models.model_hash"), primary_key=True),
    sa.Column("sampling_hash", sa.Text, primary_key=True),
    sa.Column("sampling", JSONB, nullable=False),
    sa.Column("dim", sa.Integer, nullable=False),
    sa.Column("embedding", ARRAY(sa.REAL), nullable=False),
    sa.Column("frame_indices", ARRAY(sa.Integer), nullable=False),
    sa.Column("frame_embeddings", ARRAY(sa.REAL, dimensions=2)),
    sa.Column("run_id", UUID(as_uuid=True), sa.ForeignKey("runs.id", ondelete="SET NULL")),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("frames", JSONB),
)

dedup_settings = sa.Table(
    "dedup_settings",
    metadata,
    sa.Column("dedup_key", sa.Text, primary_key=True),
    sa.Column("model_hash", sa.Text, sa.ForeignKey("embedding_models.model_hash"), nullable=False),
    sa.Column("sampling_hash", sa.Text, nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("keep_by", sa.Text, nullable=False),
    sa.Column("neighbours", sa.Integer, nullable=False),
    sa.Column("n_clips", sa.Integer, nullable=False, server_default="0"),
    sa.Column("n_groups", sa.Integer, nullable=False, server_default="0"),
    sa.Column("n_duplicates", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)

duplicate_groups = sa.Table(
    "duplicate_groups",
    metadata,
    sa.Column("dedup_key", sa.Text, sa.ForeignKey("dedup_settings.dedup_key", ondelete="CASCADE"), primary_key=True),
    sa.Column("clip_id", sa.BigInteger, sa.ForeignKey("clips.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("group_id", sa.BigInteger, nullable=False),
    sa.Column("duplicate_of", sa.BigInteger),
    sa.Column("similarity", sa.Float, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("compared_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
)
