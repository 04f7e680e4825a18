"""Runs that close, and a schema that explains itself.

* ``runs.error`` (why a failed, cancelled or crashed run ended) and ``runs.heartbeat_at`` (so
  the next run can close a run whose process died as crashed).
* ``COMMENT ON`` every table and column (units and ranges where they apply); `vidqa db
  schema` prints them, and the README's schema section is generated from them.

Downgrade drops the two columns and leaves the comments (they change no data).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Frozen here (a migration must not change when the code does).
COMMENTS = {
    "runs": ("One row per flow run that scores videos (score-videos, ingest-new).", {
        "id": "vidqa run id (uuid)",
        "flow_run_id": "Prefect flow-run id, when run under Prefect",
        "flow_name": "the flow that opened the run: score-videos or ingest-new",
        "source": "what was listed: folder, glob, s3:// prefix or manifest",
        "parameters": "the flow parameters as given (JSONB)",
        "vidqa_version": "vidqa version that ran",
        "status": "running | completed | failed | crashed",
        "started_at": "when the run opened",
        "finished_at": "when the run closed (NULL while running)",
        "n_videos": "videos listed for scoring",
        "n_scored": "videos scored by this run",
        "n_skipped": "videos already scored under these settings (from the ledger or the shard cache)",
        "n_failed": "videos that failed (their reasons are in videos.failure_reason)",
        "n_scores_written": "score rows written by this run",
        "error": "why a failed, cancelled or crashed run ended",
        "heartbeat_at": "last sign of life of the run's process (every VIDQA_RUN_HEARTBEAT_S seconds)",
    }),
    "run_shards": ("One row per shard of a fanned-out run (a score-shard flow run on a work pool).", {
        "run_id": "the run the shard belongs to",
        "shard_index": "position of the shard in the run's listing",
        "n_videos": "videos in the shard",
        "status": "submitted | completed | failed",
        "attempts": "flow runs submitted for this shard (a crashed or failed one is resubmitted)",
        "flow_run_id": "the latest score-shard flow run of this shard",
        "host": "machine that completed the shard",
        "outcomes": "per-video outcomes written by the shard's flow run (JSONB)",
        "error": "why the shard failed after its resubmissions",
        "updated_at": "last change of the row",
    }),
    "videos": ("One row per distinct video: a URI and the content of its bytes.", {
        "id": "video id",
        "uri": "absolute path or s3:// URI",
        "content_id": "sha256:<hex of the bytes> or etag:<S3 ETag>; empty when the bytes could not be read",
        "size_bytes": "file or object size, bytes",
        "source_mtime": "local file mtime (seconds since the epoch) when hashed; lets reruns skip rehashing",
        "status": "ok | failed",
        "failure_stage": "read | fetch | probe | split | decode: where a failed video stopped",
        "failure_reason": "why the video failed, in words",
        "failure_transient": "true: the failure may pass (network, throttling) and a rerun retries the video",
        "container": "container format (ffprobe format_name)",
        "duration_s": "duration, seconds: the video stream's, else the container's",
        "container_duration_s": "duration the container declares, seconds",
        "stream_duration_s": "duration of the video stream, seconds",
        "start_time_s": "presentation time of the first frame, seconds",
        "fps_avg": "average frame rate, frames per second (frame count / duration)",
        "fps_nominal": "nominal frame rate (ffprobe r_frame_rate), frames per second",
        "frame_count_declared": "frame count the container declares (nb_frames); may be missing or wrong",
        "frame_count": "video frames counted (packets), the frames clips index into",
        "width": "stored width, pixels",
        "height": "stored height, pixels",
        "display_width": "width as displayed (rotation and sample aspect ratio applied), pixels",
        "display_height": "height as displayed (rotation and sample aspect ratio applied), pixels",
        "rotation": "display rotation, degrees (0, 90, 180, 270)",
        "sample_aspect_ratio": "pixel aspect ratio, e.g. 1:1",
        "video_codec": "video codec (ffprobe codec_name)",
        "audio_codec": "audio codec of the first audio stream, NULL without audio",
        "has_audio": "whether the file has an audio stream",
        "bit_rate": "overall bit rate, bits per second",
        "probe": "the full ffprobe output (JSONB)",
        "first_run_id": "the run that first recorded the video",
        "last_run_id": "the run that last wrote the row",
        "created_at": "when the row was created",
        "updated_at": "when the row last changed",
    }),
    "clips": ("Segments of a video; the whole video is the clip of kind 'video', so every score attaches to a clip.", {
        "id": "clip id",
        "video_id": "the video",
        "kind": "video (the whole video) | scene | window",
        "start_frame": "first frame, an index into the video's frames in presentation order",
        "end_frame": "end frame, exclusive",
        "start_time_s": "presentation time of the first frame, seconds",
        "end_time_s": "end of the last frame, seconds (from the stream's timestamps)",
        "created_at": "when the clip was recorded",
        "split_hash": "identity of the split settings that made the clip; '' for the whole video",
    }),
    "video_splits": ("One row per video and split settings, written when the split ran (also when it kept no clip).", {
        "video_id": "the video",
        "split_hash": "identity of the split settings",
        "method": "scenes | windows",
        "config": "the split settings (JSONB)",
        "n_clips": "clips the split kept",
        "created_at": "when the split ran",
    }),
    "scorer_configs": ("What a configuration hash means: a scorer's settings, code version and weights.", {
        "config_hash": "16 hex digits: the hash of config",
        "scorer": "scorer name (technical, emscore, text_video, video_audio, aesthetic, videoscore)",
        "config": "scorer name, code version, every setting (sampling included) and the weights' identity "
                  "(file hashes), and run context such as EMScore's IDF corpus hash (JSONB)",
        "created_at": "when the configuration was first used",
    }),
    "scores": ("Every score, one row per clip, scorer configuration, text inputs and metric; reruns upsert.", {
        "id": "score id",
        "clip_id": "the clip scored",
        "scorer": "scorer name",
        "config_hash": "the scorer configuration (see scorer_configs)",
        "metric": "metric name (the wide views' column)",
        "value": "the value (double precision); NULL when undefined (details say why)",
        "details": "frames used, skipped corrupt frames, per-frame values, why undefined (JSONB)",
        "run_id": "the run that wrote the score",
        "created_at": "when the score was written",
        "input_hash": "the text the score was computed from (see score_inputs); '' for scorers that read none",
    }),
    "scorer_failures": ("A scorer that could not score one clip (the video is fine); the ledger counts it as done.", {
        "id": "failure id",
        "clip_id": "the clip",
        "scorer": "scorer name",
        "config_hash": "the scorer configuration",
        "reason": "why, in words",
        "run_id": "the run that recorded it",
        "created_at": "when it was recorded",
        "input_hash": "the text inputs it was asked to score ('' for none)",
    }),
    "score_inputs": ("The text a score was computed from (captions, prompts, references).", {
        "input_hash": "16 hex digits: the hash of inputs",
        "inputs": "the text fields, e.g. {\"candidate\": ..., \"references\": [...]} (JSONB)",
        "created_at": "when first used",
    }),
    "reference_sets": ("Named references for set-level metrics (vidqa reference build).", {
        "name": "the reference's name",
        "source": "folder, glob, s3:// prefix or manifest of the real videos",
        "video_key": "manifest column naming each video",
        "created_at": "when registered",
        "updated_at": "when last rebuilt",
    }),
    "feature_sets": ("Detector features of a video set, cached by content and settings.", {
        "id": "feature set id",
        "set_key": "identity: content digest plus every setting that changes the features",
        "content_digest": "SHA-256 of the members' content ids and spans",
        "source": "the set as given (source or SQL selection)",
        "detector": "detector name (i3d_kinetics400, c3d_ucf101, inception_v3_2015_12_05, vgg16)",
        "detector_file": "detector file name",
        "detector_sha256": "SHA-256 of the detector file",
        "output": "features | probs",
        "unit": "clip | frame: what one sample is",
        "n_frames": "frames per clip sample",
        "subsample": "frame step within a clip sample",
        "clip_offset": "start | random: where clip samples start",
        "height": "frame height given to the detector, pixels",
        "width": "frame width given to the detector, pixels",
        "max_items": "most samples drawn",
        "seed": "sampling seed",
        "sampling_rules": "version of the clip and frame sampling rules",
        "resize": "how frames were resized",
        "covariance": "covariance convention of the stored statistics",
        "n_members": "videos in the set",
        "n_items": "samples extracted",
        "n_short": "videos too short for one clip sample",
        "n_failed": "videos that could not be read",
        "failures": "the failed videos and their reasons (JSONB, at most 1000)",
        "feature_dim": "feature width",
        "mean": "feature mean (float8[])",
        "cov_trace": "trace of the feature covariance",
        "features_uri": "where the features file is (local path or s3:// URI)",
        "features_sha256": "SHA-256 of the features file",
        "features_bytes": "size of the features file, bytes",
        "seconds": "extraction time, seconds",
        "vidqa_version": "vidqa version that extracted",
        "created_at": "when extracted",
    }),
    "metric_values": ("Set-level metric values (FVD, KVD, FID, KID, IS, precision/recall) with what makes them comparable.", {
        "id": "value id",
        "metric": "metric name, e.g. fvd2048_16f",
        "quantity": "what the row holds: fd, kd, is, precision or recall",
        "value": "the value (mean over runs); units in unit",
        "unit": "what the value measures and its scale",
        "run_std": "standard deviation over runs",
        "split_std": "standard deviation over splits or subsets (IS, KID)",
        "ci_low": "bootstrap confidence interval, low end",
        "ci_high": "bootstrap confidence interval, high end",
        "ci_level": "confidence level of the interval (1 - alpha)",
        "n_boot": "bootstrap replicates",
        "num_runs": "runs averaged",
        "run_values": "the value of each run (float8[])",
        "seed": "seed of the first run (run r uses seed + r)",
        "reference_name": "the reference's name, when registered",
        "reference_source": "the reference set as given",
        "candidate_source": "the candidate set as given",
        "reference_set_ids": "feature_sets of the reference, per run",
        "candidate_set_ids": "feature_sets of the candidate, per run",
        "detector": "detector name",
        "detector_sha256": "SHA-256 of the detector file",
        "height": "frame height given to the detector, pixels",
        "width": "frame width given to the detector, pixels",
        "n_frames": "frames per clip sample",
        "subsample": "frame step within a clip sample",
        "reference_offset": "where reference clip samples start",
        "candidate_offset": "where candidate clip samples start",
        "n_real": "reference samples used",
        "n_fake": "candidate samples used",
        "n_promised": "samples the metric's name promises",
        "covariance": "covariance convention",
        "warning": "set when fewer samples were available than promised",
        "details": "per-run values, sqrtm method, KID subsets, IS splits (JSONB)",
        "vidqa_version": "vidqa version that computed it",
        "created_at": "when computed",
    }),
}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def upgrade() -> None:
    op.add_column("runs", sa.Column("error", sa.Text))
    op.add_column("runs", sa.Column("heartbeat_at", sa.DateTime(timezone=True)))
    for table, (about, columns) in COMMENTS.items():
        op.execute(f"COMMENT ON TABLE {table} IS {_quote(about)}")
        for column, text in columns.items():
            op.execute(f"COMMENT ON COLUMN {table}.{column} IS {_quote(text)}")


def downgrade() -> None:
    op.drop_column("runs", "heartbeat_at")
    op.drop_column("runs", "error")
