"""The statements of set-level metrics: feature sets, references, metric values."""

from __future__ import annotations

from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine

from vidqa.db import tables as t


def _feature_set_row(conn, set_key: str) -> Optional[dict[str, Any]]:
    row = conn.execute(sa.select(t.feature_sets).where(t.feature_sets.c.set_key == set_key)).mappings().first()
    return dict(row) if row else None


def feature_set_row(engine: Engine, set_key: str) -> Optional[dict[str, Any]]:
    with engine.connect() as conn:
        return _feature_set_row(conn, set_key)


def upsert_feature_set(engine: Engine, values: dict[str, Any]) -> dict[str, Any]:
    """Record a feature set (a rebuild of the same key replaces the row); returns the row."""
    with engine.begin() as conn:
        stmt = pg_insert(t.feature_sets).values(**values)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["set_key"], set_={k: stmt.excluded[k] for k in values if k != "set_key"}
        ))
        return _feature_set_row(conn, values["set_key"])


def upsert_reference(engine: Engine, name: str, source: str, video_key: str) -> None:
    with engine.begin() as conn:
        stmt = pg_insert(t.reference_sets).values(name=name, source=source, video_key=video_key)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["name"], set_={"source": source, "video_key": video_key, "updated_at": sa.func.now()}
        ))


def reference_row(engine: Engine, name: str) -> Optional[dict[str, Any]]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(t.reference_sets).where(t.reference_sets.c.name == name)).mappings().first()
    return dict(row) if row else None


def insert_metric_values(engine: Engine, rows: list[dict[str, Any]]) -> list[int]:
    with engine.begin() as conn:
        return list(conn.execute(sa.insert(t.metric_values).returning(t.metric_values.c.id), rows).scalars())


def metric_value_rows(engine: Engine, metric: Optional[str], limit: int) -> list[dict[str, Any]]:
    q = sa.select(t.metric_values).order_by(t.metric_values.c.id.desc()).limit(limit)
    if metric:
        q = q.where(t.metric_values.c.metric == metric)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def reference_rows(engine: Engine) -> list[dict[str, Any]]:
    q = (
        sa.select(t.reference_sets.c.name, t.reference_sets.c.source, t.reference_sets.c.updated_at,
                  sa.func.count(t.feature_sets.c.id).label("feature_sets"))
        .select_from(t.reference_sets.outerjoin(t.feature_sets, t.feature_sets.c.source == t.reference_sets.c.source))
        .group_by(t.reference_sets.c.name).order_by(t.reference_sets.c.name)
    )
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]
