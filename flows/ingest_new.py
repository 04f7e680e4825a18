"""Incremental scoring for schedules: score only what is new or changed under a source."""

from __future__ import annotations

import time

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.hooks import RUN_HOOKS
from flows.runners import task_runner
from flows.score_videos import ScoreVideosParams, finish_run, run_shards
from tasks.scoring import find_unfinished, list_videos, open_run, prepare_scorers
from vidqa.scoring.outcomes import RunSummary


class IngestNewParams(ScoreVideosParams):
    """Parameters of an incremental run (rendered as a form in the Prefect UI): the same as a
    scoring run; only videos not yet scored with these settings are fetched and scored."""


@flow(name="ingest-new", task_runner=task_runner(), **RUN_HOOKS)
def ingest_new(params: IngestNewParams) -> RunSummary:
    """List a source, keep the objects not yet scored with the current configuration (new
    keys, changed ETags, new scorers or settings, transient failures), and score only those."""
    started = time.perf_counter()
    run_id = open_run(params.source, params.model_dump(mode="json"), flow_run.id, flow_run.flow_name or "ingest-new")
    listed = list_videos(params.source, params.video_key, params.aws_credentials_block)
    # Scorer context (EMScore's IDF) is that of the whole listing, so the new videos are
    # scored with the very configuration the ledger is checked against.
    specs = prepare_scorers(params.scorer_specs(), listed, params.clips)
    todo = find_unfinished(listed, specs, params.clips, params.aws_credentials_block)
    get_run_logger().info("%d of %d listed videos are new or unfinished", len(todo), len(listed))
    outcomes = run_shards(params, todo, specs, run_id, "vidqa-ingest")
    return finish_run(params, todo, specs, run_id, outcomes, started, "vidqa-ingest",
                      n_listed=len(listed), n_new=len(todo))
