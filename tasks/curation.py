"""Prefect tasks over vidqa's curation functions (near-duplicates). No curation logic lives here."""

from __future__ import annotations

from typing import Any, Optional

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from vidqa.curation.dedup import DedupResult, deduplicate
from vidqa.curation.report import dedup_markdown
from vidqa.db import get_engine
from vidqa.db.embeddings import VectorMissing


def _worth_retrying(task, task_run, state) -> bool:
    """Retry the database's trouble, not a missing extension, no embeddings or a bad setting."""
    exc = state.result(raise_on_failure=False)
    return not isinstance(exc, (VectorMissing, LookupError, ValueError))


@task(name="find-duplicates", retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=_worth_retrying,
      cache_policy=NO_CACHE)  # the groups table is the cache: a rerun compares only new clips
def find_duplicates(threshold: float, model: Optional[str], keep_by: str, neighbours: int) -> DedupResult:
    return deduplicate(get_engine(), threshold=threshold, model=model, keep_by=keep_by, neighbours=neighbours)


@task(name="publish-dedup-report", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def publish_dedup_report(result: DedupResult) -> dict[str, Any]:
    create_markdown_artifact(markdown=dedup_markdown(result), key="vidqa-dedup",
                             description="Near-duplicate groups: the largest, with their keepers")
    return {"groups": result.n_groups, "duplicates": result.n_duplicates}
