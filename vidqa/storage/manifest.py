"""Manifests: JSONL or CSV files with one row per video, as the seed operators read them.

Each row names its video in ``video_key`` (default ``video_path``): a local path
(relative paths resolve against the manifest's folder), or an ``s3://`` URI. Every other
column is carried to the scorers as a text field: ``candidate``, ``reference`` (one
string or a list), ``prompt``, ``audio_path``, ``audio_text``, and anything else.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from pathlib import Path
from typing import Any, Iterable

MANIFEST_SUFFIXES = (".jsonl", ".ndjson", ".csv")
# Columns whose values are locations, resolved like the video path.
PATH_FIELDS = ("audio_path",)


class ManifestError(ValueError):
    """The manifest itself is unusable (not a bad row: those become failed videos)."""


def is_manifest(source: str) -> bool:
    return source.lower().endswith(MANIFEST_SUFFIXES)


def _csv_value(value: str) -> Any:
    # A CSV cell holding a JSON list is a list (several references for one candidate).
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            return value
        if isinstance(parsed, list):
            return parsed
    return value


def parse_manifest(text: str, name: str) -> list[dict[str, Any]]:
    """Rows of a manifest's text; ``name`` decides the format and appears in errors."""
    if name.lower().endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text))
        return [
            {k: _csv_value(v) for k, v in row.items() if k is not None and v not in (None, "")}
            for row in reader
        ]
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{name}:{lineno}: not JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise ManifestError(f"{name}:{lineno}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def resolve_location(value: str, base: str) -> str:
    """A row's path made absolute: URIs and absolute paths as given, the rest against the
    manifest's folder (a local folder or an ``s3://`` prefix)."""
    if "://" in value or value.startswith("/"):
        return value
    if "://" in base:
        scheme, rest = base.split("://", 1)
        return f"{scheme}://{posixpath.normpath(posixpath.join(rest, value))}"
    return str((Path(base) / value).expanduser().absolute())


def manifest_entries(
    rows: Iterable[dict[str, Any]], base: str, name: str, video_key: str = "video_path"
) -> list[tuple[str, dict[str, Any]]]:
    """``(video location, text fields)`` per row, in manifest order."""
    entries = []
    for i, row in enumerate(rows, 1):
        location = row.get(video_key)
        if not isinstance(location, str) or not location.strip():
            raise ManifestError(f"{name}: row {i} has no {video_key!r} (columns: {', '.join(row) or 'none'})")
        fields = {k: v for k, v in row.items() if k != video_key}
        for key in PATH_FIELDS:
            if isinstance(fields.get(key), str) and fields[key]:
                fields[key] = resolve_location(fields[key], base)
        entries.append((resolve_location(location.strip(), base), fields))
    if not entries:
        raise ManifestError(f"{name}: no rows")
    return entries
