"""Run bookkeeping used by the flows: open a run (after migrating), close it with its summary,
and record the shards of a fanned-out run."""

from __future__ import annotations

import logging
import socket
import uuid
from typing import Any, Optional

from vidqa import __version__
from vidqa.db import get_engine, repository as repo
from vidqa.db.migrate import ensure_schema
from vidqa.db.views import refresh_if_stale
from vidqa.scoring.outcomes import RunSummary, VideoOutcome


def open_run(source: str, parameters: dict[str, Any], flow_run_id: Optional[str], flow_name: Optional[str]) -> str:
    ensure_schema()
    run_id = repo.create_run(get_engine(), source, parameters, __version__, flow_run_id, flow_name)
    return str(run_id)


def close_run(summary: RunSummary) -> None:
    status = "completed" if summary.succeeded or summary.n_videos == 0 else "failed"
    repo.finish_run(get_engine(), uuid.UUID(summary.run_id), status, summary.counts())
    try:  # new metrics get their columns in the wide views
        refresh_if_stale(get_engine())
    except Exception as exc:  # noqa: BLE001 - the scores are stored; a stale view does not fail the run
        logging.getLogger(__name__).warning("wide views not refreshed (run `vidqa db refresh-views`): %s", exc)


def submit_shard(run_id: str, shard_index: int, n_videos: int, flow_run_id: str) -> None:
    """Record a shard's submission as a flow run."""
    repo.submit_shard(get_engine(), uuid.UUID(run_id), shard_index, n_videos, uuid.UUID(str(flow_run_id)))


def complete_shard(run_id: str, shard_index: int, outcomes: list[VideoOutcome], flow_run_id: Optional[str]) -> None:
    repo.complete_shard(get_engine(), uuid.UUID(run_id), shard_index, [o.model_dump(mode="json") for o in outcomes],
                        uuid.UUID(str(flow_run_id)) if flow_run_id else None, socket.gethostname())


def fail_shard(run_id: str, shard_index: int, error: str) -> None:
    repo.fail_shard(get_engine(), uuid.UUID(run_id), shard_index, error)


def shard_outcomes(run_id: str, shard_index: int) -> Optional[list[VideoOutcome]]:
    with get_engine().connect() as conn:
        stored = repo.shard_outcomes(conn, uuid.UUID(run_id), shard_index)
    return None if stored is None else [VideoOutcome.model_validate(o) for o in stored]
