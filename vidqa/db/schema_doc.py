"""The schema as the database describes it: every table and column with its ``COMMENT``, as
markdown (``vidqa db schema``; the README's schema section is this text)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vidqa.db.tables import metadata

_TABLES = sa.text("""
    SELECT c.relname, obj_description(c.oid, 'pg_class')
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname <> 'alembic_version'
""")
_COLUMNS = sa.text("""
    SELECT a.attname, format_type(a.atttypid, a.atttypmod), col_description(a.attrelid, a.attnum)
    FROM pg_attribute a
    WHERE a.attrelid = CAST(:table AS regclass) AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum
""")


def described_schema(engine: Engine) -> list[tuple[str, str | None, list[tuple[str, str, str | None]]]]:
    """``(table, comment, [(column, type, comment), ...])`` in the order of ``db/tables.py``."""
    order = list(metadata.tables)
    with engine.connect() as conn:
        tables = dict(conn.execute(_TABLES).all())
        names = sorted(tables, key=lambda t: (order.index(t) if t in order else len(order), t))
        return [(t, tables[t], [tuple(r) for r in conn.execute(_COLUMNS, {"table": t})]) for t in names]


def _cell(text: str | None) -> str:
    return (text or "(no comment)").replace("|", "\\|")


def schema_markdown(engine: Engine) -> str:
    out = []
    for table, about, columns in described_schema(engine):
        out += [f"**`{table}`** — {about or '(no comment)'}", "", "| column | type | meaning |", "|---|---|---|"]
        out += [f"| `{name}` | {kind} | {_cell(text)} |" for name, kind, text in columns]
        out.append("")
    return "\n".join(out).rstrip() + "\n"
