"""One row per video: URIs in their one spelling, and the same bytes under several URIs as
locations of one video.

* Every stored URI is rewritten to its one spelling (local: the real path, symlinks and
  ``..`` resolved where the file system still knows them; ``s3://``: blanks, scheme case
  and a trailing ``/`` removed).
* Rows that then name the same content (or, for a placeholder of an unreadable file, the
  same URI) are merged into the oldest row (lowest id). Its clips, splits, scores and
  scorer failures gain those of the others; where both hold a value of the very same
  identity (clip span, scorer, configuration, input, metric) the newer value (by its run's
  start) is kept, as a rerun's upsert would, and a failure is dropped where the same work
  was scored under another spelling (as ``write_scores`` does). Nothing else is dropped.
* ``video_locations`` lists every URI a video's bytes were seen at (each merged row's URI
  among them), and ``uq_videos_content`` makes the content the video's identity.

The wide views gain ``locations``. Downgrade drops the table and the index (and
``locations``); merged rows stay merged (their locations are lost, the scores are not).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

import os

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from vidqa.db.views import drop_wide_views, refresh_wide_views

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COMMENTS = {
    "video_locations": ("Every URI a video's bytes were seen at: the same content under a second URI "
                        "(a copy, a rename, another bucket) is a location of the one video, not a second video.", {
        "video_id": "the video (videos.id) whose bytes are at this URI",
        "uri": "the location in its one spelling: a local real path, or s3://bucket/key",
        "size_bytes": "file or object size in bytes when last seen here",
        "source_mtime": "file mtime or object LastModified (epoch seconds) when last seen here",
        "first_run_id": "the run that first saw the bytes here",
        "last_run_id": "the run that last saw the bytes here",
        "first_seen_at": "when first seen here",
        "last_seen_at": "when last seen here",
    }),
    "videos": (None, {
        "uri": "where the video was first seen, in its one spelling (a local real path, or s3://bucket/key); "
               "video_locations lists every URI of the same bytes",
        "content_id": "identity of the bytes (sha256:<hex> for files, etag:<etag> for objects; '' when "
                      "unreadable); unique among readable videos",
    }),
}

_VIDEO_COLUMNS_KEPT = ("uri", "content_id", "id", "first_run_id", "created_at")


def _spelling(uri: str) -> str:
    # Frozen copy of vidqa.storage.uris.normalise_uri as of this revision.
    text = uri.strip()
    if text.lower().startswith("s3://"):
        return "s3://" + text[len("s3://"):].rstrip("/")
    if text.startswith("file://"):
        uri = text[len("file://"):]
    elif "://" in text:
        return text
    path = os.path.abspath(os.path.expanduser(uri))
    if os.path.islink(path) and not os.path.exists(path):
        return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    return os.path.realpath(path)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# When a score was last written: its run's start (an upsert by a rerun keeps created_at).
_WRITTEN = "(coalesce((SELECT r.started_at FROM runs r WHERE r.id = {t}.run_id), {t}.created_at), {t}.id)"


def _merge_clip(conn, keep_clip: int, dup_clip: int) -> None:
    """Move a duplicate clip's scores and failures onto the kept clip of the same span."""
    ids = {"keep": keep_clip, "dup": dup_clip}
    # Same identity on both: the newer value wins, as an upsert by a rerun would.
    conn.execute(sa.text(f"""
        UPDATE scores k SET value = d.value, details = d.details, run_id = d.run_id, created_at = d.created_at
        FROM scores d
        WHERE k.clip_id = :keep AND d.clip_id = :dup AND (k.scorer, k.config_hash, k.input_hash, k.metric)
              = (d.scorer, d.config_hash, d.input_hash, d.metric) AND {_WRITTEN.format(t="d")} > {_WRITTEN.format(t="k")}
    """), ids)
    conn.execute(sa.text("""
        UPDATE scores d SET clip_id = :keep
        WHERE d.clip_id = :dup AND NOT EXISTS (
            SELECT 1 FROM scores k WHERE k.clip_id = :keep AND (k.scorer, k.config_hash, k.input_hash, k.metric)
                  = (d.scorer, d.config_hash, d.input_hash, d.metric))
    """), ids)
    conn.execute(sa.text(f"""
        UPDATE scorer_failures k SET reason = d.reason, run_id = d.run_id, created_at = d.created_at
        FROM scorer_failures d
        WHERE k.clip_id = :keep AND d.clip_id = :dup
          AND (k.scorer, k.config_hash, k.input_hash) = (d.scorer, d.config_hash, d.input_hash)
          AND {_WRITTEN.format(t="d")} > {_WRITTEN.format(t="k")}
    """), ids)
    conn.execute(sa.text("""
        UPDATE scorer_failures d SET clip_id = :keep
        WHERE d.clip_id = :dup AND NOT EXISTS (SELECT 1 FROM scorer_failures k WHERE k.clip_id = :keep
                          AND (k.scorer, k.config_hash, k.input_hash) = (d.scorer, d.config_hash, d.input_hash))
    """), ids)
    # A scored identity has no failure (write_scores deletes it): one spelling's failure is
    # moot where another spelling scored the same work.
    conn.execute(sa.text("""
        DELETE FROM scorer_failures f WHERE f.clip_id = :keep AND EXISTS (
            SELECT 1 FROM scores s WHERE s.clip_id = :keep
              AND (s.scorer, s.config_hash, s.input_hash) = (f.scorer, f.config_hash, f.input_hash))
    """), ids)
    conn.execute(sa.text("DELETE FROM clips WHERE id = :dup"), ids)


def _merge_video(conn, keep: int, dup: int) -> None:
    pairs = conn.execute(sa.text("""
        SELECT k.id, d.id FROM clips d JOIN clips k ON k.video_id = :keep
            AND (k.split_hash, k.kind, k.start_frame, k.end_frame) = (d.split_hash, d.kind, d.start_frame, d.end_frame)
        WHERE d.video_id = :dup
    """), {"keep": keep, "dup": dup}).all()
    for keep_clip, dup_clip in pairs:
        _merge_clip(conn, keep_clip, dup_clip)
    conn.execute(sa.text("UPDATE clips SET video_id = :keep WHERE video_id = :dup"), {"keep": keep, "dup": dup})
    conn.execute(sa.text("""
        UPDATE video_splits d SET video_id = :keep WHERE d.video_id = :dup
          AND NOT EXISTS (SELECT 1 FROM video_splits k WHERE k.video_id = :keep AND k.split_hash = d.split_hash)
    """), {"keep": keep, "dup": dup})
    conn.execute(sa.text("DELETE FROM videos WHERE id = :dup"), {"dup": dup})


def _add_location(conn, video_id: int, uri: str, row) -> None:
    conn.execute(sa.text("""
        INSERT INTO video_locations (video_id, uri, size_bytes, source_mtime, first_run_id, last_run_id,
                                     first_seen_at, last_seen_at)
        VALUES (:v, :u, :size, :mtime, :first, :last, :created, :updated)
        ON CONFLICT (video_id, uri) DO UPDATE SET
            first_seen_at = least(video_locations.first_seen_at, excluded.first_seen_at),
            first_run_id = CASE WHEN excluded.first_seen_at < video_locations.first_seen_at
                                THEN excluded.first_run_id ELSE video_locations.first_run_id END,
            last_seen_at = greatest(video_locations.last_seen_at, excluded.last_seen_at),
            last_run_id = CASE WHEN excluded.last_seen_at > video_locations.last_seen_at
                               THEN excluded.last_run_id ELSE video_locations.last_run_id END,
            size_bytes = CASE WHEN excluded.last_seen_at > video_locations.last_seen_at
                              THEN excluded.size_bytes ELSE video_locations.size_bytes END,
            source_mtime = CASE WHEN excluded.last_seen_at > video_locations.last_seen_at
                                THEN excluded.source_mtime ELSE video_locations.source_mtime END
    """), {"v": video_id, "u": uri, "size": row.size_bytes, "mtime": row.source_mtime, "first": row.first_run_id,
           "last": row.last_run_id, "created": row.created_at, "updated": row.updated_at})


def upgrade() -> None:
    op.create_table(
        "video_locations",
        sa.Column("video_id", sa.BigInteger, sa.ForeignKey("videos.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("uri", sa.Text, primary_key=True),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("source_mtime", sa.Float),
        sa.Column("first_run_id", UUID(as_uuid=True), sa.ForeignKey("runs.id", ondelete="SET NULL")),
        sa.Column("last_run_id", UUID(as_uuid=True), sa.ForeignKey("runs.id", ondelete="SET NULL")),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_video_locations_uri", "video_locations", ["uri"])

    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT id, uri, content_id, status, size_bytes, source_mtime, first_run_id, last_run_id, created_at, "
        "updated_at FROM videos ORDER BY id")).all()
    groups: dict[tuple[str, str], list] = {}
    for row in rows:
        spelled = _spelling(row.uri)
        key = (row.content_id, "") if row.content_id != "" else ("", spelled)
        groups.setdefault(key, []).append((row, spelled))

    columns = [c["name"] for c in sa.inspect(conn).get_columns("videos") if c["name"] not in _VIDEO_COLUMNS_KEPT]
    for members in groups.values():
        keeper, keeper_uri = members[0]  # the oldest row: lowest id
        for row, spelled in members:
            _add_location(conn, keeper.id, spelled, row)
        if len(members) > 1:
            # The kept row describes the bytes as last read well (a transient failure of the
            # oldest spelling must not hide a later good read).
            ok = [r for r, _ in members if r.status == "ok"]
            best = max(ok or [r for r, _ in members], key=lambda r: (r.updated_at, r.id))
            if best.id != keeper.id:
                listed = ", ".join(columns)
                conn.execute(sa.text(f"UPDATE videos SET ({listed}) = (SELECT {listed} FROM videos WHERE id = :best) "
                                     "WHERE id = :id"), {"best": best.id, "id": keeper.id})
            for row, _ in members[1:]:
                _merge_video(conn, keeper.id, row.id)
            first_runs = [r.first_run_id for r, _ in members if r.first_run_id is not None]
            if first_runs and keeper.first_run_id is None:
                conn.execute(sa.text("UPDATE videos SET first_run_id = :r WHERE id = :id"),
                             {"r": first_runs[0], "id": keeper.id})
        if keeper_uri != keeper.uri:
            conn.execute(sa.text("UPDATE videos SET uri = :u WHERE id = :id"), {"u": keeper_uri, "id": keeper.id})

    op.create_index("uq_videos_content", "videos", ["content_id"], unique=True,
                    postgresql_where=sa.text("content_id <> ''"))
    for table, (about, cols) in COMMENTS.items():
        if about:
            op.execute(f"COMMENT ON TABLE {table} IS {_quote(about)}")
        for column, text in cols.items():
            op.execute(f"COMMENT ON COLUMN {table}.{column} IS {_quote(text)}")
    # The views gain `locations` (every URI of the video).
    drop_wide_views(conn)
    refresh_wide_views(conn, revision=revision)


def downgrade() -> None:
    conn = op.get_bind()
    drop_wide_views(conn)
    op.drop_index("uq_videos_content", table_name="videos")
    op.drop_table("video_locations")
    refresh_wide_views(conn, revision=down_revision)
