"""Prefect tasks over vidqa's scoring functions. No scoring logic lives here."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any, Optional

from prefect import task
from prefect.cache_policies import NO_CACHE

from vidqa import pipeline, runs
from vidqa.clips import ClipSpec
from vidqa.db import get_engine
from vidqa.storage import S3Options, Storage, VideoRef
from vidqa.summary import RunSummary

# Shards write to the ledger themselves and skip finished work, so a retry is safe and
# a Prefect result cache would only hide a reset database. Identity-keyed caching of
# pure steps comes with the Prefect-operations work.


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
    """Retry I/O trouble, not a source that does not exist or a malformed manifest."""
    exc = state.result(raise_on_failure=False)
    return not isinstance(exc, (FileNotFoundError, PermissionError, ValueError))


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
    retries=2,
    retry_delay_seconds=[5, 30],
    cache_policy=NO_CACHE,
    tags=["vidqa-score"],
)
def score_shard(
    refs: list[dict[str, Any]],
    scorers: list[dict[str, Any]],
    run_id: str,
    clips: Optional[dict[str, Any]] = None,
    aws_credentials_block: Optional[str] = None,
) -> dict[str, Any]:
    result = pipeline.score_shard(
        get_engine(),
        [VideoRef.from_dict(r) for r in refs],
        [pipeline.ScorerSpec(**s) for s in scorers],
        uuid.UUID(run_id),
        ClipSpec.model_validate(clips or {}),
        storage_for(aws_credentials_block),
    )
    return result.to_dict()


@task(name="close-run", retries=3, retry_delay_seconds=[1, 5, 15], cache_policy=NO_CACHE)
def close_run(summary: dict[str, Any]) -> None:
    runs.close_run(RunSummary(**summary))
