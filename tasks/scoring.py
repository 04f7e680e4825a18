"""Prefect tasks over vidqa's scoring functions. No scoring logic lives here."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Optional

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from vidqa.scoring import runs, shard
from vidqa.scoring.job import ScorerSpec, ShardJob
from vidqa.scoring.ledger import unfinished_videos
from vidqa.video.clips import ClipSpec
from vidqa.config import get_settings
from vidqa.db import get_engine
from vidqa.db.engine import database_url
from vidqa.db import repository as repo
from vidqa.errors import DatabaseLost, ScorerError
from vidqa.storage import S3Options, Storage, VideoRef
from vidqa.scoring.outcomes import RunSummary

# Tag of tasks that run GPU scorers; a tag concurrency limit on it bounds how many run at
# once across all workers (`prefect concurrency-limit create vidqa-gpu 1`).
GPU_TAG = "vidqa-gpu"


def storage_for(aws_credentials_block: Optional[str]) -> Storage:
    """Storage with S3 settings from a Prefect ``AwsCredentials`` block, or from VIDQA_S3_*.

    Only the block's name travels in parameters; the secrets are read here, inside the
    worker, and stay in ``SecretStr`` fields.
    """
    if not aws_credentials_block:
        return Storage()
    from prefect_aws import AwsCredentials
    from pydantic import SecretStr

    creds = AwsCredentials.load(aws_credentials_block, _sync=True)
    fallback = S3Options.from_settings()
    params = creds.aws_client_parameters
    return Storage(S3Options(
        endpoint_url=(params.endpoint_url if params else None) or fallback.endpoint_url,
        region=creds.region_name or fallback.region,
        access_key_id=SecretStr(creds.aws_access_key_id) if creds.aws_access_key_id else None,
        secret_access_key=creds.aws_secret_access_key,
        session_token=SecretStr(creds.aws_session_token) if creds.aws_session_token else None,
        profile=creds.profile_name,
    ))


def _final_flow_runs() -> dict[str, str]:
    """Prefect's final state of the flow runs whose vidqa runs are still marked running."""
    ids = runs.running_flow_run_ids()
    if not ids:
        return {}
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        found = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
    return {str(f.id): f.state.name for f in found if f.state is not None and f.state.is_final()}


@task(name="open-run", retries=3, retry_delay_seconds=[1, 5, 15], cache_policy=NO_CACHE)
def open_run(source: str, parameters: dict[str, Any], flow_run_id: Optional[str], flow_name: str) -> str:
    """Open the run's row; first close runs whose flow run ended, or whose process stopped
    beating, without closing them."""
    return runs.open_run(source, parameters, flow_run_id, flow_name, _final_flow_runs())


def _worth_retrying(task, task_run, state) -> bool:
    """Retry I/O trouble (object storage, database), not what fails the same way again: a
    source that does not exist, a malformed manifest, missing model weights, a database
    that did not come back within its grace period."""
    exc = state.result(raise_on_failure=False)
    return not isinstance(exc, (FileNotFoundError, PermissionError, ValueError, ScorerError, DatabaseLost))


@lru_cache(maxsize=8)
def _database_identity(url: str) -> str:
    with get_engine(url).connect() as conn:
        return repo.database_identity(conn)


def shard_cache_key(context, parameters: dict[str, Any]) -> Optional[str]:
    """Prefect cache key of a shard, from identities only (REFERENCE §7): each video's URI,
    ETag or size+mtime and text fields; each scorer's config hash (settings, run context,
    model weights); the clip split; the database. Never models, clients or arrays. None
    (no caching) when a video has no listed identity."""
    key = ShardJob.model_validate(parameters["job"]).identity(_database_identity(database_url()))
    return None if key is None else f"vidqa-shard-{key}"


def result_storage() -> Optional[str]:
    """Result storage for cached tasks from ``VIDQA_RESULT_STORAGE``: None (Prefect's local
    default), a saved block's slug, or an ``s3://bucket/prefix``, for which an ``s3-bucket``
    block is saved (Prefect needs storage it can name) with VIDQA_S3_* credentials held in
    the block's secret fields."""
    target = get_settings().result_storage
    if not target or not target.startswith("s3://"):
        return target or None
    import hashlib

    from prefect_aws import AwsCredentials, S3Bucket
    from prefect_aws.client_parameters import AwsClientParameters

    from vidqa.storage.s3 import reveal

    opts = S3Options.from_settings()
    bucket, _, folder = target[len("s3://"):].partition("/")
    name = "vidqa-results-" + hashlib.sha256(f"{target}|{opts.endpoint_url}".encode()).hexdigest()[:12]
    credentials = AwsCredentials(
        aws_access_key_id=reveal(opts.access_key_id), aws_secret_access_key=reveal(opts.secret_access_key),
        aws_session_token=reveal(opts.session_token), profile_name=opts.profile, region_name=opts.region,
        aws_client_parameters=AwsClientParameters(endpoint_url=opts.endpoint_url),
    )
    S3Bucket(bucket_name=bucket, bucket_folder=folder.rstrip("/"), credentials=credentials).save(name, overwrite=True)
    return f"s3-bucket/{name}"


@task(
    name="list-videos",
    retries=3,
    retry_delay_seconds=[1, 5, 15],
    retry_condition_fn=_worth_retrying,
    cache_policy=NO_CACHE,
)
def list_videos(source: str, video_key: str = "video_path", aws_credentials_block: Optional[str] = None) -> list[VideoRef]:
    return storage_for(aws_credentials_block).list_videos(source, video_key)


@task(name="prepare-scorers", cache_policy=NO_CACHE)
def prepare_scorers(specs: list[ScorerSpec], refs: list[VideoRef], clips: Optional[ClipSpec] = None) -> list[ScorerSpec]:
    return shard.prepare_scorers(specs, refs, clips)


@task(
    name="score-shard-videos",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    retry_jitter_factor=0.5,
    retry_condition_fn=_worth_retrying,
    cache_key_fn=shard_cache_key,
    persist_result=True,
    tags=["vidqa-score"],
)
def score_shard_videos(job: ShardJob) -> dict[str, Any]:
    """Score a shard's videos; cached by identity, so an identical shard of a later run is not
    even started (its videos are reported as cached). Within a run, the ledger skips finished
    scorer work, so a changed setting recomputes only its scorer. The result is kept as plain
    JSON (see ShardResult)."""
    return shard.score_shard(get_engine(), job, storage_for(job.aws_credentials_block)).model_dump(mode="json")


@task(name="find-unfinished", retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=2),
      retry_jitter_factor=0.5, retry_condition_fn=_worth_retrying, cache_policy=NO_CACHE)
def find_unfinished(refs: list[VideoRef], specs: list[ScorerSpec], clips: ClipSpec,
                    aws_credentials_block: Optional[str] = None) -> list[VideoRef]:
    """The listed videos not yet scored under the current scorers and clips (by the ledger;
    nothing is downloaded)."""
    return unfinished_videos(get_engine(), refs, shard.build_scorers(specs), clips, storage_for(aws_credentials_block))


@task(name="close-run", retries=3, retry_delay_seconds=[1, 5, 15], cache_policy=NO_CACHE)
def close_run(summary: RunSummary) -> RunSummary:
    return runs.close_run(summary)
