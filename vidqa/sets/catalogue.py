"""The catalogue of set-level results: registered references (a name for a source of real
videos) and the stored metric values."""

from __future__ import annotations

from typing import Any, Optional

from sqlalchemy.engine import Engine

from vidqa.db import sets as db
from vidqa.errors import SetMetricError
from vidqa.sets.members import SetSource


def register_reference(engine: Engine, name: str, source: str, video_key: str = "video_path") -> None:
    db.upsert_reference(engine, name, source, video_key)


def reference_source(engine: Engine, reference: str) -> tuple[Optional[str], SetSource]:
    """``(name, set)`` of a reference given by registered name, or by a source itself."""
    row = db.reference_row(engine, reference)
    if row:
        return row["name"], SetSource(source=row["source"], video_key=row["video_key"])
    if "://" in reference or "/" in reference or reference.endswith((".jsonl", ".csv")):
        return None, SetSource(source=reference)
    raise SetMetricError(
        f"no reference named {reference!r}; build it first: vidqa reference build {reference} SOURCE --metric ..."
    )


def list_metric_values(engine: Engine, metric: Optional[str] = None, limit: int = 50) -> list[dict[str, Any]]:
    """Stored metric values, newest first."""
    return db.metric_value_rows(engine, metric, limit)


def list_references(engine: Engine) -> list[dict[str, Any]]:
    """Registered references, with how many feature sets their source has."""
    return db.reference_rows(engine)
