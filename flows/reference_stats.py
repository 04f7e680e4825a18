"""Reference statistics: detector features of a real video set, stored once under a name."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_table_artifact

from flows.set_params import ReferenceStatsParams
from tasks.set_metrics import build_reference_features


@flow(name="reference-stats")
def reference_stats(params: ReferenceStatsParams) -> list[dict[str, Any]]:
    """Extract (or find stored) reference features of ``params.source`` for every metric and
    register them as ``params.name``."""
    rows = build_reference_features(params.name, params.source, params.metrics, params.options(),
                                    params.video_key, params.aws_credentials_block)
    create_table_artifact(
        table=[{k: r[k] for k in ("metric", "seed", "feature_set", "reused", "n_items", "n_short", "n_failed")}
               for r in rows] or [{"metric": "(none)"}],
        key="vidqa-reference-stats", description=f"Reference **{params.name}** from {params.source}",
    )
    return rows
