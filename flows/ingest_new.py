"""Incremental scoring for schedules: score only what is new or changed under a source."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.runners import task_runner
from flows.score_videos import ScoreVideosParams, score_refs
from tasks.scoring import find_unfinished, list_videos, open_run, prepare_scorers


class IngestNewParams(ScoreVideosParams):
    """Parameters of an incremental run (rendered as a form in the Prefect UI): the same as a
    scoring run; only videos not yet scored with these settings are fetched and scored."""


@flow(name="ingest-new", task_runner=task_runner())
def ingest_new(params: IngestNewParams) -> dict[str, Any]:
    """List a source, keep the objects not yet scored with the current configuration (new
    keys, changed ETags, new scorers or settings, transient failures), and score only those."""
    started = time.perf_counter()
    logger = get_run_logger()
    run_id = open_run(params.source, params.model_dump(mode="json"), flow_run.id, flow_run.flow_name or "ingest-new")
    listed = list_videos(params.source, params.video_key, params.aws_credentials_block)
    specs = prepare_scorers(params.scorer_specs(), listed)
    todo = find_unfinished(listed, specs, params.clips.model_dump(mode="json"), params.aws_credentials_block)
    logger.info("%d of %d listed videos are new or unfinished", len(todo), len(listed))
    # Scorer context (EMScore's IDF) stays that of the whole listing, so the new videos are
    # scored with the very configuration the ledger was checked against.
    summary = score_refs(params, todo, run_id, started, "vidqa-ingest", specs=specs)
    return {**summary, "n_listed": len(listed), "n_new": len(todo)}
