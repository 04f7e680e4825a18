"""Prefect tasks over vidqa's scoring functions. No scoring logic lives here."""

from __future__ import annotations

import uuid
from typing import Any, Optional

from prefect import task
from prefect.cache_policies import NO_CACHE

from vidqa import pipeline, runs, storage
from vidqa.db import get_engine
from vidqa.summary import RunSummary

# Shards write to the ledger themselves and skip finished work, so a retry is safe and
# a Prefect result cache would only hide a reset database. Identity-keyed caching of
# pure steps comes with the Prefect-operations work.


@task(name="open-run", retries=3, retry_delay_seconds=[1, 5, 15], cache_policy=NO_CACHE)
def open_run(source: str, parameters: dict[str, Any], flow_run_id: Optional[str], flow_name: str) -> str:
    return runs.open_run(source, parameters, flow_run_id, flow_name)


@task(name="list-videos", retries=3, retry_delay_seconds=[1, 5, 15], cache_policy=NO_CACHE)
def list_videos(source: str) -> list[dict[str, Any]]:
    return [ref.to_dict() for ref in storage.list_videos(source)]


@task(
    name="score-shard",
    retries=2,
    retry_delay_seconds=[5, 30],
    cache_policy=NO_CACHE,
    tags=["vidqa-score"],
)
def score_shard(refs: list[dict[str, Any]], scorers: list[dict[str, Any]], run_id: str) -> dict[str, Any]:
    result = pipeline.score_shard(
        get_engine(),
        [storage.VideoRef.from_dict(r) for r in refs],
        [pipeline.ScorerSpec(**s) for s in scorers],
        uuid.UUID(run_id),
    )
    return result.to_dict()


@task(name="close-run", retries=3, retry_delay_seconds=[1, 5, 15], cache_policy=NO_CACHE)
def close_run(summary: dict[str, Any]) -> None:
    runs.close_run(RunSummary(**summary))
