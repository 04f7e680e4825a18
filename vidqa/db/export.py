"""Export a selection of the wide views as a training manifest (JSONL or Parquet).

``vidqa export --where "aesthetic > 5.5" --out picked.jsonl`` writes every row of
``clip_scores_wide`` (or ``video_scores_wide`` with ``level="video"``) that the predicate
selects, with all its columns plus ``video_path`` (= ``uri``), so the file can be fed back
to ``vidqa run``. ``NaN`` never appears: undefined values are JSON ``null``.

The predicate is user text run against the database, so it passes three layers:

1. It is parsed with Postgres' own parser (pglast) as the ``WHERE`` of
   ``SELECT 1 FROM <view> WHERE <predicate>`` and refused unless the result is exactly
   that one statement, and the condition uses only columns of the view, constants,
   comparisons, boolean logic, arithmetic, ``IS [NOT] NULL``, ``BETWEEN``, ``IN (...)``
   lists, ``LIKE``/``ILIKE``/regular expressions, ``CASE``, casts to plain types and the
   functions in :data:`ALLOWED_FUNCTIONS`: no sub-queries, set operations, other tables,
   other functions (``pg_sleep``, ``pg_read_file``, ``set_config``, ``nextval``, ``lo_*``,
   ``dblink``...) or extra clauses. The query then runs the *re-printed* condition, not
   the text as given (comments and anything the parser did not keep are gone).
2. It runs in a ``READ ONLY`` transaction with a ``statement_timeout``, always rolled back.
3. It is sent as one statement over the extended query protocol (a server-side cursor),
   which Postgres refuses to run when it holds more than one command.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any, Collection, Iterable, Iterator, Literal, Optional

from vidqa.db.views import CLIP_VIEW, VIDEO_VIEW

Level = Literal["clip", "video"]
Fmt = Literal["jsonl", "parquet"]

VIEW_FOR_LEVEL = {"clip": CLIP_VIEW, "video": VIDEO_VIEW}
ORDER_FOR_LEVEL = {"clip": ("uri", "start_time_s", "clip_id"), "video": ("uri", "video_id")}
STATEMENT_TIMEOUT_S = 60.0
BATCH_ROWS = 2000

ALLOWED_FUNCTIONS = frozenset({
    # numbers
    "abs", "round", "trunc", "floor", "ceil", "ceiling", "sign", "sqrt", "cbrt", "exp", "ln", "log", "log10",
    "power", "pow", "mod", "width_bucket",
    # text
    "lower", "upper", "length", "char_length", "character_length", "octet_length", "substr", "substring",
    "strpos", "position", "starts_with", "left", "right", "split_part", "replace", "btrim", "ltrim", "rtrim",
    "concat", "reverse", "md5", "regexp_like", "similar_to_escape",
})
ALLOWED_OPERATORS = frozenset({
    "=", "<>", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/", "%", "^", "@", "|/", "||",
    "~~", "!~~", "~~*", "!~~*", "~", "~*", "!~", "!~*",
})
ALLOWED_TYPES = frozenset({
    "int2", "int4", "int8", "smallint", "integer", "int", "bigint", "float4", "float8", "real", "numeric",
    "decimal", "text", "varchar", "bpchar", "char", "bool", "boolean",
})


class PredicateError(ValueError):
    """The text given as ``--where`` is not a plain predicate over the view."""


class ExportError(ValueError):
    """The predicate was accepted but Postgres could not evaluate it (or the output failed)."""


# -- layer 1: the parser ------------------------------------------------------------------


def _names(nodes: Iterable[Any]) -> tuple[str, ...]:
    from pglast import ast

    out = []
    for n in nodes or ():
        if not isinstance(n, ast.String):
            raise _Refused(f"unexpected name part {type(n).__name__}")
        out.append(n.sval)
    return tuple(out)


class _Refused(Exception):
    pass


def _check_name(names: tuple[str, ...], allowed: Collection[str], what: str) -> None:
    schema, name = names[:-1], names[-1] if names else ""
    if schema not in ((), ("pg_catalog",)) or name.lower() not in allowed:
        raise _Refused(f"{what} {'.'.join(names)!r} is not allowed")


def _walk(node: Any, view: str, columns: Optional[Collection[str]]) -> None:
    """Refuse any node of ``node`` outside the allow-list."""
    from pglast import ast, enums

    if node is None:
        return
    if isinstance(node, (tuple, list)):
        for n in node:
            _walk(n, view, columns)
        return
    kind = type(node).__name__
    if isinstance(node, ast.A_Const):
        return
    if isinstance(node, ast.ColumnRef):
        fields = node.fields
        if any(isinstance(f, ast.A_Star) for f in fields):
            raise _Refused("'*' is not a column")
        names = _names(fields)
        if len(names) == 2 and names[0] == view:
            names = names[1:]
        if len(names) != 1:
            raise _Refused(f"column {'.'.join(names)!r} is not a column of {view}")
        if columns is not None and names[0] not in columns:
            raise _Refused(f"unknown column {names[0]!r} (names other than plain lower-case words need "
                           f'double quotes, e.g. "EMScore(X,V)_full_F")')
        return
    if isinstance(node, ast.A_Expr):
        allowed_kinds = {
            enums.A_Expr_Kind.AEXPR_OP, enums.A_Expr_Kind.AEXPR_OP_ANY, enums.A_Expr_Kind.AEXPR_OP_ALL,
            enums.A_Expr_Kind.AEXPR_DISTINCT, enums.A_Expr_Kind.AEXPR_NOT_DISTINCT, enums.A_Expr_Kind.AEXPR_NULLIF,
            enums.A_Expr_Kind.AEXPR_IN, enums.A_Expr_Kind.AEXPR_LIKE, enums.A_Expr_Kind.AEXPR_ILIKE,
            enums.A_Expr_Kind.AEXPR_SIMILAR, enums.A_Expr_Kind.AEXPR_BETWEEN, enums.A_Expr_Kind.AEXPR_NOT_BETWEEN,
            enums.A_Expr_Kind.AEXPR_BETWEEN_SYM, enums.A_Expr_Kind.AEXPR_NOT_BETWEEN_SYM,
        }
        if node.kind not in allowed_kinds:
            raise _Refused(f"expression {node.kind.name} is not allowed")
        _check_name(_names(node.name), ALLOWED_OPERATORS, "operator")
        _walk(node.lexpr, view, columns)
        _walk(node.rexpr, view, columns)
        return
    if isinstance(node, ast.FuncCall):
        _check_name(_names(node.funcname), ALLOWED_FUNCTIONS, "function")
        if node.over is not None or node.agg_filter is not None or node.agg_order or node.agg_star \
                or node.agg_distinct or node.agg_within_group or node.func_variadic:
            raise _Refused(f"aggregate or window syntax on {'.'.join(_names(node.funcname))!r} is not allowed")
        _walk(node.args, view, columns)
        return
    if isinstance(node, ast.TypeCast):
        t = node.typeName
        if t.setof or t.pct_type or t.arrayBounds:
            raise _Refused("casts to set, %TYPE or array types are not allowed")
        _check_name(_names(t.names), ALLOWED_TYPES, "cast to type")
        _walk(t.typmods, view, columns)
        _walk(node.arg, view, columns)
        return
    simple = {
        "BoolExpr": ("args",), "NullTest": ("arg",), "BooleanTest": ("arg",), "CoalesceExpr": ("args",),
        "MinMaxExpr": ("args",), "CaseExpr": ("arg", "args", "defresult"), "CaseWhen": ("expr", "result"),
        "A_ArrayExpr": ("elements",), "RowExpr": ("args",), "CollateClause": ("arg",),
    }
    if kind in simple:
        for attr in simple[kind]:
            _walk(getattr(node, attr), view, columns)
        return
    if isinstance(node, ast.SubLink):
        raise _Refused("sub-queries are not allowed")
    if isinstance(node, ast.ParamRef):
        raise _Refused("parameters ($n) are not allowed")
    if isinstance(node, ast.SQLValueFunction):
        raise _Refused(f"{node.op.name.removeprefix('SVFOP_')} is not allowed")
    raise _Refused(f"{kind} is not allowed")


_OTHER_CLAUSES = {
    "withClause": "WITH", "intoClause": "INTO", "distinctClause": "DISTINCT", "groupClause": "GROUP BY",
    "havingClause": "HAVING", "windowClause": "WINDOW", "sortClause": "ORDER BY", "limitCount": "LIMIT",
    "limitOffset": "OFFSET", "lockingClause": "FOR UPDATE/SHARE", "valuesLists": "VALUES",
}


def check_predicate(where: str, view: str = CLIP_VIEW, columns: Optional[Collection[str]] = None) -> str:
    """The predicate re-printed by Postgres' parser, or :class:`PredicateError` saying why
    it is not a plain condition over ``view`` (whose columns are ``columns`` when given)."""
    from pglast import ast, enums, parse_sql
    from pglast.parser import ParseError
    from pglast.stream import RawStream

    def refuse(why: str) -> PredicateError:
        return PredicateError(f"not a predicate over {view}: {why}")

    if not where or not where.strip():
        raise refuse("empty")
    if "\x00" in where:
        raise refuse("NUL character")
    prefix = f"SELECT 1 FROM {view} WHERE "
    try:
        stmts = parse_sql(prefix + where)
    except ParseError as exc:
        message, *rest = exc.args
        where_at = f" (character {rest[0] - len(prefix) + 1})" if rest and isinstance(rest[0], int) else ""
        raise refuse(f"{message}{where_at}") from None
    if len(stmts) != 1:
        raise refuse("more than one statement (';')")
    stmt = stmts[0].stmt
    if not isinstance(stmt, ast.SelectStmt):
        raise refuse(f"parsed as {type(stmt).__name__}")
    if stmt.op != enums.SetOperation.SETOP_NONE:
        raise refuse("set operations (UNION, INTERSECT, EXCEPT) are not allowed")
    for attr, clause in _OTHER_CLAUSES.items():
        if getattr(stmt, attr, None):
            raise refuse(f"{clause} is not allowed, only a condition")
    from_ = stmt.fromClause or ()
    if len(from_) != 1 or not isinstance(from_[0], ast.RangeVar) or from_[0].relname != view \
            or from_[0].schemaname or from_[0].alias:
        raise refuse("it changes the FROM clause")
    if stmt.whereClause is None:
        raise refuse("no condition")
    try:
        _walk(stmt.whereClause, view, columns)
    except _Refused as exc:
        raise refuse(str(exc)) from None
    return RawStream()(stmt.whereClause)


# -- layers 2 and 3: the query ------------------------------------------------------------


def _columns(raw, view: str) -> list[tuple[str, str]]:
    """``(name, type)`` of the view's columns, in order."""
    rows = raw.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        [view],
    ).fetchall()
    if not rows:
        raise ExportError(f"view {view} does not exist: run `vidqa db upgrade` or `vidqa db refresh-views`")
    return [(r[0], r[1]) for r in rows]


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _select(raw, view: str, predicate: str, names: list[str], order: tuple[str, ...],
            limit: Optional[int]) -> Iterator[list[dict[str, Any]]]:
    """Batches of selected rows (dicts with ``video_path`` first), from a server-side cursor."""
    from psycopg import sql

    query = sql.SQL("SELECT {cols} FROM {view} WHERE ({pred}) ORDER BY {order}{limit}").format(
        cols=sql.SQL(", ").join(map(sql.Identifier, names)),
        view=sql.Identifier(view),
        pred=sql.SQL(predicate),
        order=sql.SQL(", ").join(map(sql.Identifier, order)),
        limit=sql.SQL(" LIMIT {}").format(sql.Literal(int(limit))) if limit is not None else sql.SQL(""),
    )
    # A named (server-side) cursor: DECLARE over the extended protocol, one statement only;
    # no parameters are passed, so '%' in the predicate is not a placeholder.
    uri = names.index("uri")
    with raw.cursor(name=f"vidqa_export_{uuid.uuid4().hex[:8]}") as cur:
        cur.itersize = BATCH_ROWS
        cur.execute(query)
        while True:
            rows = cur.fetchmany(BATCH_ROWS)
            if not rows:
                return
            yield [{"video_path": r[uri], **{n: _clean(v) for n, v in zip(names, r)}} for r in rows]


# -- writers ------------------------------------------------------------------------------


def _jsonl_to(fh, batches: Iterable[list[dict[str, Any]]]) -> int:
    n = 0
    for batch in batches:
        for row in batch:
            fh.write(json.dumps(row, ensure_ascii=False, allow_nan=False, default=str) + "\n")
        n += len(batch)
    return n


def _write_jsonl(path: str, batches: Iterable[list[dict[str, Any]]], _schema: Any) -> int:
    with open(path, "w", encoding="utf-8") as fh:
        return _jsonl_to(fh, batches)


def _arrow_schema(columns: list[tuple[str, str]]):
    import pyarrow as pa

    types = {
        "bigint": pa.int64(), "integer": pa.int32(), "smallint": pa.int16(), "double precision": pa.float64(),
        "real": pa.float32(), "boolean": pa.bool_(), "text": pa.string(),
    }
    types["text[]"] = pa.list_(pa.string())  # mixed_configs
    fields = [pa.field("video_path", pa.string())]
    # Other types (jsonb: the views' configs) as text; JSON values are written as JSON text.
    fields += [pa.field(name, types.get(pg_type, pa.string())) for name, pg_type in columns]
    return pa.schema(fields)


def _json_as_text(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: json.dumps(v, ensure_ascii=False, sort_keys=True) if isinstance(v, dict) else v
             for k, v in row.items()} for row in batch]


def _write_parquet(path: str, batches: Iterable[list[dict[str, Any]]], schema: Any) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 0
    with pq.ParquetWriter(path, schema) as writer:
        for batch in batches:
            writer.write_table(pa.Table.from_pylist(_json_as_text(batch), schema=schema))
            n += len(batch)
        if n == 0:
            writer.write_table(schema.empty_table())
    return n


WRITERS = {"jsonl": _write_jsonl, "parquet": _write_parquet}


def format_for(out: str) -> Fmt:
    """The format a destination's suffix implies: parquet for ``.parquet``/``.pq``, else jsonl."""
    return "parquet" if out.lower().endswith((".parquet", ".pq")) else "jsonl"


def export_selection(
    engine,
    where: str,
    out: str,
    fmt: Optional[Fmt] = None,
    level: Level = "clip",
    storage_options=None,
    limit: Optional[int] = None,
    statement_timeout_s: float = STATEMENT_TIMEOUT_S,
) -> int:
    """Write the rows of the ``level`` view selected by ``where`` to ``out`` (a local path,
    an ``s3://`` URI, or ``-`` for standard output, JSONL only); returns the number of rows written. Raises :class:`PredicateError` for a
    refused predicate and :class:`ExportError` when Postgres cannot evaluate it; a failed
    export leaves no file behind."""
    if level not in VIEW_FOR_LEVEL:
        raise ValueError(f"level must be clip or video, not {level!r}")
    fmt = fmt or format_for(out)
    if fmt not in WRITERS:
        raise ValueError(f"format must be jsonl or parquet, not {fmt!r}")
    if "://" in out and not out.startswith("s3://"):
        raise ValueError(f"--out: a local path or an s3:// URI, not {out!r}")
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    if out == "-":
        if fmt != "jsonl":
            raise ValueError("--out -: standard output takes jsonl only (parquet needs a file)")
        with selected_batches(engine, where, level, limit, statement_timeout_s) as (_, batches):
            n = _jsonl_to(sys.stdout, batches)
        sys.stdout.flush()
        return n
    with selected_batches(engine, where, level, limit, statement_timeout_s) as (columns, batches):
        return _write_atomically(out, fmt, batches, _arrow_schema(columns) if fmt == "parquet" else None,
                                 storage_options)


@contextlib.contextmanager
def selected_batches(
    engine, where: str, level: Level = "clip", limit: Optional[int] = None,
    statement_timeout_s: float = STATEMENT_TIMEOUT_S,
) -> Iterator[tuple[list[tuple[str, str]], Iterator[list[dict[str, Any]]]]]:
    """``(columns, batches)`` of the ``level`` view's rows selected by ``where``, read in a
    read-only transaction with a statement timeout; the predicate is checked first. Raises
    :class:`PredicateError` / :class:`ExportError` as :func:`export_selection`."""
    import psycopg

    if level not in VIEW_FOR_LEVEL:
        raise ValueError(f"level must be clip or video, not {level!r}")
    view = VIEW_FOR_LEVEL[level]
    with engine.connect() as sa_conn:
        raw = sa_conn.connection.driver_connection
        batches = None
        try:
            raw.rollback()  # start clean: the next statement opens the transaction
            raw.execute("SET TRANSACTION READ ONLY")
            raw.execute("SELECT set_config('statement_timeout', %s, true)", [f"{int(statement_timeout_s * 1000)}ms"])
            if raw.execute("SHOW transaction_read_only").fetchone()[0] != "on":
                raise ExportError("could not open a read-only transaction")
            columns = _columns(raw, view)
            names = [name for name, _ in columns]
            predicate = check_predicate(where, view, set(names))
            batches = _select(raw, view, predicate, names, ORDER_FOR_LEVEL[level], limit)
            yield columns, batches
        except psycopg.errors.QueryCanceled as exc:
            raise ExportError(f"the selection took longer than {statement_timeout_s:g} s and was cancelled") from exc
        except psycopg.Error as exc:
            message = exc.diag.message_primary or str(exc)
            raise ExportError(f"Postgres could not evaluate the predicate: {message}") from exc
        finally:
            if batches is not None:
                batches.close()  # closes the server-side cursor before the transaction ends
            raw.rollback()


def select_rows(engine, where: str, level: Level = "clip", limit: Optional[int] = None) -> list[dict[str, Any]]:
    """The rows of the ``level`` view selected by ``where`` (checked, read-only), as dicts."""
    with selected_batches(engine, where, level, limit) as (_columns, batches):
        return [row for batch in batches for row in batch]


def _write_atomically(out: str, fmt: Fmt, batches, schema, storage_options) -> int:
    """Write to a temporary file, then rename it (local) or upload it whole (S3)."""
    write = WRITERS[fmt]
    if out.startswith("s3://"):
        from vidqa.storage.s3 import S3Options, s3_filesystem, split_uri

        fd, tmp = tempfile.mkstemp(prefix="vidqa-export-", suffix=f".{fmt}")
        os.close(fd)
        try:
            n = write(tmp, batches, schema)
            fs = s3_filesystem(storage_options or S3Options.from_settings())
            fs.put_file(tmp, split_uri(out))
            return n
        finally:
            os.unlink(tmp)
    target = Path(out).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        n = write(str(tmp), batches, schema)
        os.replace(tmp, target)
        return n
    finally:
        tmp.unlink(missing_ok=True)
