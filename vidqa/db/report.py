"""The queries behind a run's report: per-metric percentiles and the lowest- and
highest-scoring clips, over the videos of a source and the scorer configurations of the run
(so scores of older settings do not mix in)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

PERCENTILES = (0.05, 0.25, 0.5, 0.75, 0.95)

# The video now at each URI (an edited file leaves its older bytes' video behind), each
# video once (two URIs of the same bytes are one video), named by the first of its URIs.
_CURRENT_VIDEOS = """
    SELECT DISTINCT ON (cur.id) cur.id, cur.uri FROM (
        SELECT DISTINCT ON (l.uri) v.id, l.uri FROM video_locations l JOIN videos v ON v.id = l.video_id
        WHERE l.uri = ANY(:uris) AND v.status = 'ok' ORDER BY l.uri, l.last_seen_at DESC, v.id DESC
    ) cur JOIN video_locations f ON f.video_id = cur.id AND f.uri = cur.uri
    ORDER BY cur.id, f.first_seen_at, cur.uri
"""


@dataclass
class MetricStats:
    metric: str
    n: int
    mean: float
    min: float
    max: float
    percentiles: dict[float, float]

    def row(self) -> dict[str, Any]:
        return {"metric": self.metric, "n": self.n, "mean": round(self.mean, 6), "min": round(self.min, 6),
                **{f"p{round(q * 100)}": round(v, 6) for q, v in self.percentiles.items()},
                "max": round(self.max, 6)}


def metric_stats(engine: Engine, uris: list[str], config_hashes: list[str]) -> list[MetricStats]:
    """Per metric: count, mean, min, max and the 5/25/50/75/95th percentiles (linear
    interpolation, ``percentile_cont``) of the non-NULL values over every clip."""
    if not uris or not config_hashes:
        return []
    sql = sa.text(f"""
        WITH v AS ({_CURRENT_VIDEOS})
        SELECT s.metric, count(*), avg(s.value), min(s.value), max(s.value),
               percentile_cont(CAST(:qs AS float8[])) WITHIN GROUP (ORDER BY s.value)
        FROM scores s JOIN clips c ON c.id = s.clip_id JOIN v ON v.id = c.video_id
        WHERE s.config_hash = ANY(:hashes) AND s.value IS NOT NULL
        GROUP BY s.metric ORDER BY s.metric
    """)
    with engine.connect() as conn:
        rows = conn.execute(sql, {"uris": uris, "hashes": config_hashes, "qs": list(PERCENTILES)}).all()
    return [MetricStats(m, n, mean, lo, hi, dict(zip(PERCENTILES, ps))) for m, n, mean, lo, hi, ps in rows]


@dataclass
class Extreme:
    uri: str
    kind: str
    start_s: float
    end_s: float
    value: float


def metric_extremes(
    engine: Engine, uris: list[str], config_hashes: list[str], metric: str, k: int = 5
) -> tuple[list[Extreme], list[Extreme]]:
    """The ``k`` lowest and ``k`` highest clips on ``metric`` (ties broken by URI)."""
    def pick(order: str) -> list[Extreme]:
        sql = sa.text(f"""
            WITH v AS ({_CURRENT_VIDEOS})
            SELECT v.uri, c.kind, c.start_time_s, c.end_time_s, s.value
            FROM scores s JOIN clips c ON c.id = s.clip_id JOIN v ON v.id = c.video_id
            WHERE s.config_hash = ANY(:hashes) AND s.metric = :metric AND s.value IS NOT NULL
            ORDER BY s.value {order}, v.uri, c.start_time_s LIMIT :k
        """)
        with engine.connect() as conn:
            rows = conn.execute(sql, {"uris": uris, "hashes": config_hashes, "metric": metric, "k": k}).all()
        return [Extreme(*r) for r in rows]

    return pick("ASC"), pick("DESC")
