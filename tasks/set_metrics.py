"""Prefect tasks over vidqa's set-level metric functions. No metric logic lives here.

Feature extraction is cached by vidqa itself (``feature_sets``, keyed by the set's content and
every setting), across flows, CLI calls and machines sharing the database, so these tasks
use no Prefect result cache: a second run finds the stored features and only does the math.
"""

from __future__ import annotations

from typing import Any, Optional

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.scoring import GPU_TAG, _worth_retrying, storage_for
from vidqa.sets import compute as set_metrics
from vidqa.db import get_engine


def _progress_logger(every: float = 0.1):
    """Log extraction progress about every 10%."""
    logger = get_run_logger()
    last: dict[str, float] = {}

    def report(what: str, done: int, total: int) -> None:
        share = done / total if total else 1.0
        if share - last.get(what, -1.0) >= every or done == total:
            last[what] = share
            logger.info("%s: %d/%d", what, done, total)
    return report


@task(name="build-reference-features", tags=[GPU_TAG], retries=2, retry_delay_seconds=[5, 30],
      retry_condition_fn=_worth_retrying, cache_policy=NO_CACHE)
def build_reference_features(name: str, source: str, metrics: list[str], options: dict[str, Any],
                             video_key: str = "video_path",
                             aws_credentials_block: Optional[str] = None) -> list[dict[str, Any]]:
    return set_metrics.build_reference(
        get_engine(), name, source, metrics, set_metrics.BuildOptions(**options),
        storage=storage_for(aws_credentials_block), video_key=video_key, progress=_progress_logger(),
    )


@task(name="compute-set-metric", tags=[GPU_TAG], retries=2, retry_delay_seconds=[5, 30],
      retry_condition_fn=_worth_retrying, cache_policy=NO_CACHE)
def compute_set_metric(metric: str, candidate: dict[str, Any], reference: Optional[str], options: dict[str, Any],
                       aws_credentials_block: Optional[str] = None) -> list[dict[str, Any]]:
    return set_metrics.compute_metric(
        get_engine(), metric, set_metrics.SetSource(**candidate), reference, set_metrics.MetricOptions(**options),
        storage=storage_for(aws_credentials_block), progress=_progress_logger(),
    )
