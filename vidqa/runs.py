"""Run bookkeeping used by the flows: open a run (after migrating), close it with its summary."""

from __future__ import annotations

import uuid
from typing import Any, Optional

from vidqa import __version__
from vidqa.db import get_engine, repository as repo
from vidqa.db.migrate import ensure_schema
from vidqa.summary import RunSummary


def open_run(source: str, parameters: dict[str, Any], flow_run_id: Optional[str], flow_name: Optional[str]) -> str:
    ensure_schema()
    run_id = repo.create_run(get_engine(), source, parameters, __version__, flow_run_id, flow_name)
    return str(run_id)


def close_run(summary: RunSummary) -> None:
    status = "completed" if summary.succeeded or summary.n_videos == 0 else "failed"
    repo.finish_run(get_engine(), uuid.UUID(summary.run_id), status, summary.counts())
