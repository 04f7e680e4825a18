"""Run bookkeeping used by the flows: open a run (after migrating), keep it beating while its
process lives, close it with its summary, close it when its flow fails, is cancelled or
crashes, and close, at the next run, runs whose process died without a word."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from vidqa import __version__
from vidqa.config import get_settings
from vidqa.db import get_engine, repository as repo
from vidqa.db.migrate import ensure_schema
from vidqa.db.views import refresh_if_stale
from vidqa.scoring.outcomes import RunSummary, VideoOutcome

log = logging.getLogger(__name__)
# A run that has not beaten for this many intervals is taken for dead.
STALE_BEATS = 4


def open_run(source: str, parameters: dict[str, Any], flow_run_id: Optional[str], flow_name: Optional[str],
             final_flow_runs: Optional[dict[str, str]] = None) -> str:
    """Create the run's row (status running) and start its heartbeat in this process; first
    close the runs that are running no more (see :func:`close_dead_runs`)."""
    ensure_schema()
    close_dead_runs(final_flow_runs or {})
    run_id = repo.create_run(get_engine(), source, parameters, __version__, flow_run_id, flow_name,
                             host=socket.gethostname(), pid=os.getpid())
    keep_beating(run_id)
    return str(run_id)


def keep_beating(run_id: uuid.UUID) -> threading.Thread:
    """Beat every ``VIDQA_RUN_HEARTBEAT_S`` from a daemon thread of this process until the run
    is closed: a killed process stops beating, and the next run closes its run as crashed."""
    interval = get_settings().run_heartbeat_s
    engine = get_engine()

    def beat() -> None:
        misses = 0
        while misses < 10:  # the database is gone for good: stop beating, the run is lost anyway
            try:
                if not repo.beat(engine, run_id):
                    return  # closed
                misses = 0
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried; the run goes on
                misses += 1
                # Once per outage: the shards say what a lost database means for the run.
                (log.warning if misses == 1 else log.debug)("run %s: heartbeat not written: %s", run_id, exc)
            time.sleep(interval)

    thread = threading.Thread(target=beat, name=f"vidqa-run-{run_id}-heartbeat", daemon=True)
    thread.start()
    return thread


def running_flow_run_ids() -> list[str]:
    """The Prefect flow runs of the runs still marked running (to ask Prefect how they ended)."""
    ensure_schema()
    with get_engine().connect() as conn:
        return [str(r.flow_run_id) for r in repo.running_runs(conn) if r.flow_run_id]


def process_gone(host: Optional[str], pid: Optional[int]) -> bool:
    """Whether the process is known to be gone: only a process on this host can be asked."""
    if host != socket.gethostname() or not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def close_dead_runs(final_flow_runs: dict[str, str]) -> list[str]:
    """Close, as crashed, the runs still marked running whose process on this host is gone,
    whose heartbeat stopped (for ``STALE_BEATS`` intervals: a process elsewhere), and those
    whose Prefect flow run already ended (``final_flow_runs``: flow-run id -> its final
    state, as the caller read it from Prefect)."""
    engine = get_engine()
    stale_after = timedelta(seconds=STALE_BEATS * get_settings().run_heartbeat_s)
    now = datetime.now(timezone.utc)
    closed = []
    with engine.connect() as conn:
        rows = repo.running_runs(conn)
    for row in rows:
        last = row.heartbeat_at or row.started_at
        ended = final_flow_runs.get(str(row.flow_run_id)) if row.flow_run_id else None
        if ended is not None:
            reason = f"its flow run ended {ended} without closing the run"
        elif process_gone(row.host, row.pid):
            reason = f"its process (pid {row.pid} on {row.host}) is gone"
        elif now - last > stale_after:
            reason = f"no heartbeat since {last.isoformat(timespec='seconds')}: its process died"
        else:
            continue
        repo.close_running_runs(engine, "crashed", reason, run_id=row.id)
        log.warning("run %s closed as crashed: %s", row.id, reason)
        closed.append(str(row.id))
    return closed


def counted_in_database(summary: RunSummary) -> RunSummary:
    """The summary with what the database holds: the scores this run wrote (a shard retried
    after a dropped connection reports only its last attempt's writes), and, as scored, the
    videos they belong to."""
    with get_engine().connect() as conn:
        n_scores, n_videos = repo.run_writes(conn, uuid.UUID(summary.run_id))
    moved = min(max(0, n_videos - summary.n_scored), summary.n_skipped)
    return summary.model_copy(update={"n_scores_written": n_scores, "n_scored": summary.n_scored + moved,
                                      "n_skipped": summary.n_skipped - moved})


def close_run(summary: RunSummary) -> RunSummary:
    """Close the run with the summary's counts as the database holds them; returns that summary."""
    summary = counted_in_database(summary)
    status = "completed" if summary.succeeded or summary.n_videos == 0 else "failed"
    repo.finish_run(get_engine(), uuid.UUID(summary.run_id), status, summary.counts())
    try:  # new metrics get their columns in the wide views
        refresh_if_stale(get_engine())
    except Exception as exc:  # noqa: BLE001 - the scores are stored; a stale view does not fail the run
        log.warning("wide views not refreshed (run `vidqa db refresh-views`): %s", exc)
    return summary


def close_flow_run(flow_run_id: str, state_name: str, message: Optional[str]) -> int:
    """Close the runs of a flow run that failed, was cancelled or crashed (its state hooks)."""
    status = "crashed" if state_name.lower() == "crashed" else "failed"
    error = f"{state_name}: {message}" if message else state_name
    return repo.close_running_runs(get_engine(), status, error, flow_run_id=uuid.UUID(str(flow_run_id)))


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
