"""Which configuration each wide-view value came from.

* ``scorer_configs.summary``: a configuration in a few words, ``<scorer> v<version>
  <frames> (<first 8 hex of config_hash>)`` (``technical v1 uniform:16 (3f2a9c1e)``), the
  text ``vidqa scores`` prints; existing rows are filled from ``config`` with the rules
  frozen below. New configurations get it when registered.
* The wide views are recreated with provenance: ``configs`` (per metric of a row, the
  config_hash, summary and time of the score shown) and ``mixed_configs`` (the metrics whose
  values in the view come from more than one configuration), with the set-returning
  functions ``clip_scores_wide_for(text[])`` / ``video_scores_wide_for(text[])`` that select
  configurations explicitly (see vidqa.db.views).

Downgrade drops the functions and the column and recreates the views as 0004-0007 made them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from vidqa.db.views import drop_wide_views, refresh_wide_views

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SUMMARY_COMMENT = ("the configuration in a few words: <scorer> v<version> <frames> (<first 8 hex of config_hash>), "
                   "e.g. technical v1 uniform:16 (3f2a9c1e)")

# Frozen here (a migration must not change when the code does): vidqa.scoring.provenance as of 0008.
_ARG = {"uniform": "n", "linspace": "n", "every_n_seconds": "seconds", "every_n_frames": "step",
        "fractions": "fractions"}


def _sampling_summary(sampling: dict[str, Any]) -> str:
    method = sampling.get("method", "uniform")
    arg = sampling.get(_ARG.get(method, ""), None)
    if isinstance(arg, (list, tuple)):
        arg = ",".join(f"{a:g}" if isinstance(a, float) else str(a) for a in arg)
    text = f"{method}:{arg}" if arg is not None else method
    if sampling.get("max_size"):
        text += f"@{sampling['max_size']}px"
    return text


def _config_summary(config_hash: str, identity: dict[str, Any]) -> str:
    config = identity.get("config", {})
    sampling = (config.get("sampling") if isinstance(config, dict) else None) or identity.get("frames")
    parts = [identity.get("scorer", "?"), f"v{identity.get('version', '?')}"]
    if sampling:
        parts.append(_sampling_summary(sampling))
    return " ".join(parts) + f" ({config_hash[:8]})"


def upgrade() -> None:
    conn = op.get_bind()
    drop_wide_views(conn)
    op.add_column("scorer_configs", sa.Column("summary", sa.Text, comment=SUMMARY_COMMENT))
    rows = conn.execute(sa.text("SELECT config_hash, config FROM scorer_configs")).all()
    for config_hash, config in rows:
        conn.execute(sa.text("UPDATE scorer_configs SET summary = :s WHERE config_hash = :h"),
                     {"s": _config_summary(config_hash, config if isinstance(config, dict) else {}), "h": config_hash})
    refresh_wide_views(conn, revision=revision)


def downgrade() -> None:
    conn = op.get_bind()
    drop_wide_views(conn)
    op.drop_column("scorer_configs", "summary")
    refresh_wide_views(conn, revision=down_revision)
