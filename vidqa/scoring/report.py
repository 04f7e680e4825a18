"""What a run's scores look like, as markdown (the flows turn it into an artifact); the
numbers come from :mod:`vidqa.db.report`."""

from __future__ import annotations

from typing import Optional

from sqlalchemy.engine import Engine

from vidqa.db.report import metric_extremes


def extremes_markdown(
    engine: Engine, uris: list[str], config_hashes: list[str], metrics: list[str], k: int = 5,
    title: Optional[str] = None,
) -> str:
    """A markdown section per metric listing its lowest and highest clips."""
    lines = [f"# {title or 'Lowest and highest scores'}", ""]
    for metric in metrics:
        low, high = metric_extremes(engine, uris, config_hashes, metric, k)
        if not low:
            continue
        lines += [f"## `{metric}`", ""]
        for label, rows in (("lowest", low), ("highest", high)):
            lines.append(f"**{label}**")
            lines.append("")
            for e in rows:
                where = "" if e.kind == "video" else f" [{e.start_s:.2f}-{e.end_s:.2f} s]"
                lines.append(f"- {e.value:.4f} `{e.uri}`{where}")
            lines.append("")
    if len(lines) == 2:
        lines.append("No scores in this run.")
    return "\n".join(lines)
