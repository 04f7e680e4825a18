"""Set-level metrics: reference_sets (named reference video sets), feature_sets (detector
features of a video set, keyed by content and sampling spec; the arrays live in feature
storage), metric_values (FVD/KVD/ISV/PRV/FID/KID/IS/PR with everything that makes them
comparable).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

F8 = sa.Float(precision=53)


def _now():
    return sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "reference_sets",
        sa.Column("name", sa.Text, primary_key=True, comment="the name given to `vidqa reference build`"),
        sa.Column("source", sa.Text, nullable=False, comment="folder, s3:// prefix or manifest of the real videos"),
        sa.Column("video_key", sa.Text, nullable=False, server_default="video_path"),
        _now(),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        comment="named reference (real) video sets",
    )
    op.create_table(
        "feature_sets",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("set_key", sa.Text, nullable=False, unique=True,
                  comment="sha256 of content_digest and every sampling/detector setting below"),
        sa.Column("content_digest", sa.Text, nullable=False,
                  comment="sha256 of the members' content ids and spans (not their paths)"),
        sa.Column("source", sa.Text, nullable=False, comment="how the set was named: path, URI or SQL selection"),
        sa.Column("detector", sa.Text, nullable=False),
        sa.Column("detector_file", sa.Text, nullable=False),
        sa.Column("detector_sha256", sa.Text, nullable=False, comment="identity of the detector weights"),
        sa.Column("output", sa.Text, nullable=False, comment="features (pre-softmax) or probs"),
        sa.Column("unit", sa.Text, nullable=False, comment="clip (video metrics) or frame"),
        sa.Column("n_frames", sa.Integer, nullable=False, comment="frames per clip fed to the detector"),
        sa.Column("subsample", sa.Integer, nullable=False, comment="stride between those frames"),
        sa.Column("clip_offset", sa.Text, nullable=False, comment="random or start"),
        sa.Column("height", sa.Integer, nullable=False, comment="frames resized to this before the detector"),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("max_items", sa.Integer, nullable=False, comment="sample count asked for"),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("sampling_rules", sa.Integer, nullable=False, comment="version of vidqa.set_sampling's rules"),
        sa.Column("resize", sa.Text, nullable=False),
        sa.Column("covariance", sa.Text, nullable=False),
        sa.Column("n_members", sa.Integer, nullable=False, comment="videos or clips in the set"),
        sa.Column("n_items", sa.Integer, nullable=False, comment="clips or frames actually used"),
        sa.Column("n_short", sa.Integer, nullable=False, comment="videos skipped as shorter than a clip"),
        sa.Column("n_failed", sa.Integer, nullable=False),
        sa.Column("failures", JSONB, nullable=False, comment="[{uri, stage, reason}]"),
        sa.Column("feature_dim", sa.Integer),
        sa.Column("mean", ARRAY(F8), comment="float64 mean of the features"),
        sa.Column("cov_trace", F8),
        sa.Column("features_uri", sa.Text, nullable=False, comment="compressed .npz: features, mean, cov"),
        sa.Column("features_sha256", sa.Text, nullable=False),
        sa.Column("features_bytes", sa.BigInteger, nullable=False),
        sa.Column("seconds", sa.Float),
        sa.Column("vidqa_version", sa.Text, nullable=False),
        _now(),
        comment="detector features of a video set; a cache keyed by content and settings",
    )
    op.create_table(
        "metric_values",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("metric", sa.Text, nullable=False, comment="data-juicer name, e.g. fvd2048_16f"),
        sa.Column("quantity", sa.Text, nullable=False, comment="fd, kd, is, precision or recall"),
        sa.Column("value", F8, comment="mean over runs"),
        sa.Column("unit", sa.Text, nullable=False),
        sa.Column("run_std", F8, comment="std over runs (NULL for one run)"),
        sa.Column("split_std", F8, comment="IS/ISV: std over splits; KID/KVD: std over subsets (run mean)"),
        sa.Column("ci_low", F8),
        sa.Column("ci_high", F8),
        sa.Column("ci_level", F8),
        sa.Column("n_boot", sa.Integer),
        sa.Column("num_runs", sa.Integer, nullable=False),
        sa.Column("run_values", ARRAY(F8), nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False, comment="run r uses seed + r"),
        sa.Column("reference_name", sa.Text),
        sa.Column("reference_source", sa.Text),
        sa.Column("candidate_source", sa.Text, nullable=False),
        sa.Column("reference_set_ids", ARRAY(sa.BigInteger), nullable=False, comment="feature_sets.id per run"),
        sa.Column("candidate_set_ids", ARRAY(sa.BigInteger), nullable=False),
        sa.Column("detector", sa.Text, nullable=False),
        sa.Column("detector_sha256", sa.Text, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("n_frames", sa.Integer, nullable=False),
        sa.Column("subsample", sa.Integer, nullable=False),
        sa.Column("reference_offset", sa.Text),
        sa.Column("candidate_offset", sa.Text, nullable=False),
        sa.Column("n_real", sa.Integer, comment="reference clips/frames used (first run)"),
        sa.Column("n_fake", sa.Integer, nullable=False, comment="candidate clips/frames used (first run)"),
        sa.Column("n_promised", sa.Integer, nullable=False, comment="sample count the metric's name promises"),
        sa.Column("covariance", sa.Text, nullable=False),
        sa.Column("warning", sa.Text),
        sa.Column("details", JSONB, nullable=False),
        sa.Column("vidqa_version", sa.Text, nullable=False),
        _now(),
        comment="set-level metric values, with what makes them comparable",
    )
    op.create_index("ix_metric_values_metric", "metric_values", ["metric", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_metric_values_metric", "metric_values")
    for table in ("metric_values", "feature_sets", "reference_sets"):
        op.drop_table(table)
