"""Settings read from the environment (``VIDQA_*``) with zero-configuration defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

import platformdirs
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Process-wide settings. Every field maps to ``VIDQA_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="VIDQA_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("vidqa")),
        description="Data directory: embedded Postgres, object cache, frame exports.",
    )
    database_url: Optional[str] = Field(
        default=None,
        description="SQLAlchemy URL of a Postgres server; unset means an embedded pgserver under home.",
    )
    embedded_shared_buffers: str = Field(
        "1GB", description="shared_buffers of the embedded Postgres (Postgres' default is 128MB). The HNSW index "
        "of 100k 512-d embeddings is 263 MB: an index larger than the buffers is read from the OS on every "
        "lookup (130 ms instead of ms). Applied when vidqa starts the server; empty leaves it as it is.",
    )
    s3_endpoint_url: Optional[str] = None
    s3_region: Optional[str] = None
    s3_access_key_id: Optional[SecretStr] = None
    s3_secret_access_key: Optional[SecretStr] = None
    s3_session_token: Optional[SecretStr] = None
    s3_profile: Optional[str] = None
    s3_breaker_failures: int = Field(
        3, ge=1, description="Requests in a row that fail on network trouble (retries included) before an "
        "endpoint is taken for down: the rest of the run's objects fail at once as transient failures.",
    )
    s3_breaker_cooldown_s: float = Field(
        30.0, ge=0, description="How long a down endpoint is not tried before one object is let through again.",
    )
    cache_max_gb: float = Field(50.0, gt=0, description="Bound of the local object cache, in GiB.")
    result_storage: Optional[str] = Field(
        default=None,
        description="Where Prefect keeps cached task results: unset = Prefect's local storage; "
        "an s3:// prefix (VIDQA_S3_* settings apply); or a saved block's slug (s3-bucket/NAME).",
    )
    feature_storage: Optional[str] = Field(
        default=None,
        description="Where detector features of video sets (set-level metrics) are kept as compressed "
        ".npz files: a folder or an s3:// prefix (VIDQA_S3_* settings apply); unset = <home>/features.",
    )
    run_heartbeat_s: float = Field(
        30.0, gt=0, description="A running run's heartbeat interval; a run silent for 4 intervals is closed as "
        "crashed by the next run.",
    )
    database_grace_s: float = Field(
        10.0, ge=0, description="A dropped database connection is retried when the server answers again within "
        "this many seconds; otherwise the run stops at once with one line (what it wrote is kept).",
    )
    claim_lease_s: float = Field(
        60.0, gt=0, description="A shard's claim on a video it is scoring lasts this long unless renewed (its "
        "process renews it every third of it): a second run waits for a live claim and takes over a lapsed one.",
    )
    task_runner: Literal["thread", "dask"] = Field(
        "thread",
        description="How a flow runs its shard tasks in parallel: a bounded thread pool in the flow's "
        "process, or a Dask cluster (`pip install vidqa[dask]`).",
    )
    task_runner_workers: int = Field(
        2, ge=1, description="Threads of the thread runner; workers of the local Dask cluster started when "
        "no VIDQA_DASK_ADDRESS is given.",
    )
    dask_address: Optional[str] = Field(
        None, description="Scheduler of an existing Dask cluster (tcp://host:8786); unset = a temporary "
        "local cluster per flow run.",
    )
    dask_gpu_resource: str = Field(
        "GPU", description="Name of the Dask worker resource that shards of GPU scorers request "
        "(`dask worker --resources GPU=1`), so one GPU runs one shard at a time.",
    )
    ffmpeg_binary: str = "ffmpeg"
    decoder: Literal["auto", "torchcodec", "ffmpeg"] = Field(
        "auto", description="How frames are decoded: torchcodec in the process (byte-identical frames, no "
        "process per video), the ffmpeg binary, or auto: torchcodec where it loads and the decode allows "
        "(square pixels, displayed size, no corrupt frame), else the ffmpeg binary.",
    )
    ffprobe_binary: str = "ffprobe"
    prober: Literal["auto", "libav", "ffprobe"] = Field(
        "auto", description="How videos are probed: libav in the process (PyAV and torchcodec over the "
        "FFmpeg libraries; the same probe as ffprobe's without a process per video), the ffprobe binary, "
        "or auto: libav where it loads, else ffprobe. A file libav cannot read is probed by ffprobe, "
        "whose diagnosis becomes the failure's reason.",
    )
    decode_workers: int = Field(
        2, ge=0, le=32, description="Threads that fetch, probe and decode videos while the scorers score "
        "the clips already decoded (0: one video after the other, in the scoring thread).",
    )
    decode_ahead: int = Field(
        16, ge=1, le=4096, description="Videos decoded ahead of the scorers at most (with decode workers): "
        "their frames are held besides the queued batches, each at most VIDQA_MAX_DECODE_MB.",
    )
    store_embeddings: bool = Field(
        True, description="Keep each clip's pooled CLIP embedding (clip_embeddings) when a CLIP scorer "
        "encodes its frames: no extra encoder pass.",
    )
    store_frame_embeddings: bool = Field(
        False, description="Also keep every frame's embedding (clip_embeddings.frame_embeddings; dim x "
        "4 bytes per sampled frame).",
    )
    # Guards against absurd inputs: beyond these a video is a recorded failure, not an OOM.
    max_pixels: int = 8192 * 8192
    max_duration_s: float = 24 * 3600.0
    max_frames: int = 24 * 3600 * 60  # a day at 60 fps
    decode_timeout_s: float = 600.0
    # Memory one decode may take: the raw frames as ffmpeg hands them over plus their stacked
    # copy (3 x frames x width x height x 3 bytes, see decode.decode_memory_bytes). Beyond it the clip is a recorded failure
    # that says to sample fewer frames or shrink them (--max-size), not an OOM kill.
    max_decode_mb: float = Field(8192.0, gt=0, description="Memory bound of one video's (or clip's) decoded "
                                 "frames, in MiB.")
    # ffprobe reads headers and packets only: minutes mean a file that never ends (a FIFO,
    # a device, a stalled network mount).
    probe_timeout_s: float = 120.0

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reload_settings() -> Settings:
    """Forget cached settings (after the environment changed)."""
    get_settings.cache_clear()
    return get_settings()
