"""Prefect tasks over vidqa's scoring functions. No scoring logic lives here."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from functools import lru_cache
from typing import Any, Optional

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from vidqa import pipeline, runs
from vidqa.clips import ClipSpec
from vidqa.config import get_settings
from vidqa.db import get_engine
from vidqa.db.engine import database_url
from vidqa.db import repository as repo
from vidqa.errors import ScorerError
from vidqa.storage import S3Options, Storage, VideoRef
from vidqa.summary import RunSummary

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


@task(name="open-run", retries=3, retry_delay_seconds=[1, 5, 15], cache_policy=NO_CACHE)
def open_run(source: str, parameters: dict[str, Any], flow_run_id: Optional[str], flow_name: str) -> str:
    return runs.open_run(source, parameters, flow_run_id, flow_name)


def _worth_retrying(task, task_run, state) -> bool:
    """Retry I/O trouble (object storage, database), not what fails the same way again: a
    source that does not exist, a malformed manifest, missing model weights."""
    exc = state.result(raise_on_failure=False)
    return not isinstance(exc, (FileNotFoundError, PermissionError, ValueError, ScorerError))


@lru_cache(maxsize=8)
def _database_identity(url: str) -> str:
    with get_engine(url).connect() as conn:
        return repo.database_identity(conn)


def shard_cache_key(context, parameters: dict[str, Any]) -> Optional[str]:
    """Prefect cache key of a shard, from identities only (REFERENCE §7): each video's URI,
    ETag or size+mtime and text fields; each scorer's config hash (settings, run context,
    model weights); the clip split; the database. Never models, clients or arrays. None
    (no caching) when a video has no listed identity."""
    key = pipeline.shard_identity(
        [VideoRef.from_dict(r) for r in parameters["refs"]],
        [pipeline.ScorerSpec(**s) for s in parameters["scorers"]],
        ClipSpec.model_validate(parameters.get("clips") or {}),
        _database_identity(database_url()),
    )
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
def list_videos(source: str, video_key: str = "video_path", aws_credentials_block: Optional[str] = None) -> list[dict[str, Any]]:
    storage = storage_for(aws_credentials_block)
    return [ref.to_dict() for ref in storage.list_videos(source, video_key)]


@task(name="prepare-scorers", cache_policy=NO_CACHE)
def prepare_scorers(scorers: list[dict[str, Any]], refs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    specs = pipeline.prepare_scorers([pipeline.ScorerSpec(**s) for s in scorers],
                                     [VideoRef.from_dict(r) for r in refs])
    return [asdict(s) for s in specs]


@task(
    name="score-shard",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    retry_jitter_factor=0.5,
    retry_condition_fn=_worth_retrying,
    cache_key_fn=shard_cache_key,
    persist_result=True,
    tags=["vidqa-score"],
)
def score_shard(
    refs: list[dict[str, Any]],
    scorers: list[dict[str, Any]],
    run_id: str,
    clips: Optional[dict[str, Any]] = None,
    aws_credentials_block: Optional[str] = None,
) -> dict[str, Any]:
    """Score a shard; cached by identity, so an identical shard of a later run is not even
    started (its videos are reported as cached). Within a run, the ledger skips finished
    scorer work, so a changed setting recomputes only its scorer."""
    result = pipeline.score_shard(
        get_engine(),
        [VideoRef.from_dict(r) for r in refs],
        [pipeline.ScorerSpec(**s) for s in scorers],
        uuid.UUID(run_id),
        ClipSpec.model_validate(clips or {}),
        storage_for(aws_credentials_block),
    )
    return result.to_dict()


@task(name="find-unfinished", retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=2),
      retry_jitter_factor=0.5, retry_condition_fn=_worth_retrying, cache_policy=NO_CACHE)
def find_unfinished(
    refs: list[dict[str, Any]], scorers: list[dict[str, Any]], clips: Optional[dict[str, Any]] = None,
    aws_credentials_block: Optional[str] = None,
) -> list[dict[str, Any]]:
    """The listed videos not yet scored under the current scorers and clips (by the ledger;
    nothing is downloaded)."""
    todo = pipeline.unfinished_videos(
        get_engine(), [VideoRef.from_dict(r) for r in refs], [pipeline.ScorerSpec(**s) for s in scorers],
        ClipSpec.model_validate(clips or {}), storage_for(aws_credentials_block),
    )
    return [r.to_dict() for r in todo]


@task(name="close-run", retries=3, retry_delay_seconds=[1, 5, 15], cache_policy=NO_CACHE)
def close_run(summary: dict[str, Any]) -> None:
    runs.close_run(RunSummary(**summary))
