"""Prefect tasks over the run_shards ledger of fanned-out runs."""

from __future__ import annotations

from typing import Optional

from prefect import task
from prefect.cache_policies import NO_CACHE

from vidqa.scoring import runs
from vidqa.scoring.outcomes import VideoOutcome

# Database bookkeeping: retried on any error (a write is an idempotent upsert).
_LEDGER = dict(retries=3, retry_delay_seconds=[1, 5, 15], cache_policy=NO_CACHE)


@task(name="submit-shard-record", **_LEDGER)
def record_submitted(run_id: str, shard_index: int, n_videos: int, flow_run_id: str) -> None:
    runs.submit_shard(run_id, shard_index, n_videos, flow_run_id)


@task(name="complete-shard-record", **_LEDGER)
def record_completed(run_id: str, shard_index: int, outcomes: list[VideoOutcome], flow_run_id: Optional[str]) -> None:
    runs.complete_shard(run_id, shard_index, outcomes, flow_run_id)


@task(name="fail-shard-record", **_LEDGER)
def record_failed(run_id: str, shard_index: int, error: str) -> None:
    runs.fail_shard(run_id, shard_index, error)


@task(name="read-shard-outcomes", **_LEDGER)
def read_outcomes(run_id: str, shard_index: int) -> Optional[list[VideoOutcome]]:
    return runs.shard_outcomes(run_id, shard_index)
