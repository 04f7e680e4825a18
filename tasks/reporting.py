"""Prefect artifacts of a run: the summary table and the lowest/highest-scoring clips."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from vidqa.db import get_engine
from vidqa.db.report import metric_stats
from vidqa.scoring.outcomes import RunSummary
from vidqa.scoring.report import extremes_markdown


@task(name="publish-report", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def publish_report(
    summary: RunSummary, uris: list[str], config_hashes: list[str], metrics: list[str], key_prefix: str
) -> dict[str, Any]:
    engine = get_engine()
    stats = metric_stats(engine, uris, config_hashes)
    counts = (f"{summary.n_videos} videos: {summary.n_scored} scored, {summary.n_skipped} skipped "
              f"(already done), {summary.n_failed} failed; {summary.n_scores_written} scores written; "
              f"{summary.wall_time_s:.1f} s.")
    table = [s.row() for s in stats] or [{"metric": "(none)", "n": 0}]
    create_table_artifact(
        table=table, key=f"{key_prefix}-summary",
        description=f"**{summary.source}** (run {summary.run_id}). {counts} "
        "Percentiles over every clip of these videos under this run's scorer settings.",
    )
    failures = "".join(f"\n- `{f['uri']}`: {f['reason']}" for f in summary.failures[:50])
    markdown = extremes_markdown(engine, uris, config_hashes, metrics, title=f"Scores of {summary.source}")
    if failures:
        markdown += "\n\n## Failed videos\n" + failures
    create_markdown_artifact(markdown=markdown, key=f"{key_prefix}-extremes",
                             description="Lowest- and highest-scoring clips per metric")
    return {"metrics": [s.row() for s in stats]}
