"""The SQL surface on a real Postgres: the wide views against the long ledger, their
regeneration, `vidqa export` (valid and hostile predicates), and the documented queries."""

import json
import math
import re
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import REPO, VIDEOS, vidqa_cli
from vidqa.video.clips import ClipSpec
from vidqa.db import downgrade, get_engine, repository as repo, upgrade
from vidqa.db.views import (
    CLIP_VIEW, FIXED_COLUMNS, PROVENANCE_COLUMNS, VIDEO_VIEW, fixed_columns, metric_column, refresh_wide_views,
)
from vidqa.scoring.job import ScorerSpec
from vidqa.scoring.provenance import config_summary
from conftest import run_shard
from vidqa.storage import Storage

EMS = "EMScore(X,V)_full_F"
BFYP = str(VIDEOS / "Bfyp0C02sko_000248_000258.mp4")  # 10 s, has audio
FADES = str(VIDEOS / "fades.mp4")  # 10 s, no audio
COUNTER = str(VIDEOS / "counter.mp4")  # 3 s
TECHNICAL = [ScorerSpec("technical", {"sampling": {"n": 2}})]
# Whole-video extra scores: (aesthetic under config A (older), under config B (newer), EMScore).
EXTRA = {BFYP: (5.0, 6.0, 0.35), FADES: (6.5, 5.2, 0.5), COUNTER: (4.0, 7.0, 0.2)}
# The extra configurations, as scorers record them (the README's queries select them by summary).
CONFIGS = {
    "aesA": ("aesthetic", {"sampling": {"method": "uniform", "n": 16}}),
    "aesB": ("aesthetic", {"sampling": {"method": "fractions", "fractions": [0.1, 0.5, 0.9]}}),
    "ems1": ("emscore", {"sampling": {"method": "every_n_seconds", "seconds": 1.0}}),
    "tv1": ("text_video", {"sampling": {"method": "uniform", "n": 8}}),
    "va1": ("video_audio", {"sampling": {"method": "uniform", "n": 3}}),
}
VERSIONS = {"aesthetic": "2"}
HOSTILE = [
    "1=1; DROP TABLE scores",
    "1=1) UNION SELECT uri FROM videos --",
    "pg_sleep(5) IS NOT NULL",
    "(SELECT count(*) FROM runs) > 0",
]


def rows(conn, query, **params):
    return [dict(r._mapping) for r in conn.execute(sa.text(query), params)]


def same(a, b):
    if a is None or b is None:
        return a is None and b is None
    return a == pytest.approx(b, rel=1e-12, abs=0)


def latest_scores(conn):
    """{(clip_id, metric): value} picked in Python from the long table (latest created_at, then id)."""
    best = {}
    for r in rows(conn, "SELECT id, clip_id, metric, value, created_at FROM scores"):
        key = (r["clip_id"], r["metric"])
        if key not in best or (r["created_at"], r["id"]) > (best[key]["created_at"], best[key]["id"]):
            best[key] = r
    return {k: (None if r["value"] is None or math.isnan(r["value"]) else r["value"]) for k, r in best.items()}


def whole_clip(conn, uri):
    return conn.execute(sa.text(
        "SELECT c.id FROM clips c JOIN videos v ON v.id = c.video_id "
        "WHERE v.uri = :u AND c.kind = 'video' AND c.split_hash = ''"), {"u": uri}).scalar_one()


@pytest.fixture
def seeded(migrated_db, bad_inputs):
    """Three real videos scored whole by the technical scorer (two of them also in 2 s
    windows), a failed video, and extra metrics, captions, configs and a scorer failure."""
    engine = get_engine(migrated_db)
    refs = [ref for src in (BFYP, FADES, COUNTER, str(bad_inputs["text"])) for ref in Storage().list_videos(src)]
    run_id = repo.create_run(engine, str(VIDEOS), {}, "test")
    whole = run_shard(engine, refs, TECHNICAL, run_id)
    assert sorted(o.status for o in whole.outcomes) == ["failed", "scored", "scored", "scored"]
    windows = [r for r in refs if r.uri in (BFYP, FADES)]
    run_shard(engine, windows, TECHNICAL, run_id, ClipSpec(method="windows", window_s=2.0, min_s=1.0))
    with engine.begin() as conn:
        for h, (scorer, config) in CONFIGS.items():
            identity = {"scorer": scorer, "version": VERSIONS.get(scorer, "1"), "config": config}
            repo.register_scorer_config(conn, scorer, h, identity, config_summary(h, identity))
        for uri, (a, _, ems) in EXTRA.items():
            clip = whole_clip(conn, uri)
            repo.write_scores(conn, clip, "aesthetic", "aesA", {"aesthetic": (a, None)}, run_id)
            caption = {"candidate": f"a caption of {Path(uri).name}"}
            repo.register_inputs(conn, f"in-{clip}", caption)
            repo.write_scores(conn, clip, "emscore", "ems1", {EMS: (ems, None)}, run_id, input_hash=f"in-{clip}")
            repo.write_scores(conn, clip, "text_video", "tv1", {"text_video_sim": (ems - 0.04, None)}, run_id,
                              input_hash=f"in-{clip}")
        conn.execute(sa.text("UPDATE scores SET created_at = created_at - interval '1 hour' "
                             "WHERE config_hash = 'aesA'"))
        bfyp = whole_clip(conn, BFYP)
        repo.write_scores(conn, bfyp, "video_audio", "va1",
                          {"video_audio_sim": (0.27, None), "video_audio_pass": (1.0, None)}, run_id)
        repo.write_scorer_failure(conn, whole_clip(conn, FADES), "video_audio", "va1", "no audio stream", run_id)
    with engine.begin() as conn:  # a later transaction: config B's scores are the newer ones
        for uri, (_, b, _) in EXTRA.items():
            repo.write_scores(conn, whole_clip(conn, uri), "aesthetic", "aesB", {"aesthetic": (b, None)}, run_id)
    repo.finish_run(engine, run_id, "completed", {"n_scored": 3, "n_failed": 1})
    with engine.begin() as conn:
        refresh_wide_views(conn)
    return engine


def test_migration_creates_views_from_the_metrics_present(database_url):
    upgrade("0004", database_url)
    engine = get_engine(database_url)
    insp = sa.inspect(engine)
    assert set(insp.get_view_names()) == {CLIP_VIEW, VIDEO_VIEW}
    for view in (CLIP_VIEW, VIDEO_VIEW):  # no metrics yet: the fixed columns only
        assert [c["name"] for c in insp.get_columns(view)] == list(fixed_columns(view, "0004"))
    downgrade("0003", database_url)
    assert sa.inspect(engine).get_view_names() == []
    with engine.begin() as conn:  # scores written under 0003 (its SQL, not today's code) become columns at 0004
        vid = conn.execute(sa.text(
            "INSERT INTO videos (uri, content_id, status) VALUES ('/v.mp4', 'sha256:v', 'ok') RETURNING id")).scalar()
        clip = conn.execute(sa.text(
            "INSERT INTO clips (video_id, kind, start_frame, end_frame, start_time_s, end_time_s) "
            "VALUES (:v, 'video', 0, 10, 0, 1) RETURNING id"), {"v": vid}).scalar()
        conn.execute(sa.text("INSERT INTO scorer_configs (config_hash, scorer, config) VALUES ('h', 's', '{}')"))
        for metric, value in ((EMS, 0.4), ("aesthetic", 5.0)):
            conn.execute(sa.text("INSERT INTO scores (clip_id, scorer, config_hash, metric, value) "
                                 "VALUES (:c, 's', 'h', :m, :v)"), {"c": clip, "m": metric, "v": value})
    upgrade("head", database_url)
    with engine.connect() as conn:
        got = rows(conn, f'SELECT uri, aesthetic, "{EMS}" FROM {VIDEO_VIEW}')
    assert got == [{"uri": "/v.mp4", "aesthetic": 5.0, EMS: 0.4}]
    assert [c["name"] for c in sa.inspect(engine).get_columns(CLIP_VIEW)][-4:] == [EMS, "aesthetic",
                                                                                 *PROVENANCE_COLUMNS]


def test_wide_views_equal_the_long_table(seeded):
    with seeded.connect() as conn:
        latest = latest_scores(conn)
        metrics = sorted({m for _, m in latest})
        assert {"sharpness", "luminance_mean", "aesthetic", EMS, "video_audio_pass"} <= set(metrics)
        clips = rows(conn, f"SELECT * FROM {CLIP_VIEW}")
        expected_clips = rows(conn, "SELECT c.id, c.kind, c.start_time_s, c.end_time_s, v.uri, v.width, v.has_audio "
                                    "FROM clips c JOIN videos v ON v.id = c.video_id WHERE v.status = 'ok'")
        videos = rows(conn, f"SELECT * FROM {VIDEO_VIEW}")
        ok_videos = rows(conn, "SELECT id, uri FROM videos WHERE status = 'ok'")
        n_failed = conn.execute(sa.text("SELECT count(*) FROM videos WHERE status = 'failed'")).scalar()
    assert n_failed == 1
    # One row per clip of an ok video (3 whole + 2 x 5 windows), with its span and video facts.
    assert len(clips) == len(expected_clips) == 13
    by_id = {c["clip_id"]: c for c in clips}
    for e in expected_clips:
        row = by_id[e["id"]]
        assert (row["kind"], row["uri"], row["start_time_s"], row["end_time_s"], row["width"], row["has_audio"]) == \
            (e["kind"], e["uri"], e["start_time_s"], e["end_time_s"], e["width"], e["has_audio"])
        assert row["clip_duration_s"] == pytest.approx(e["end_time_s"] - e["start_time_s"])
    assert list(clips[0])[len(FIXED_COLUMNS[CLIP_VIEW]):] == [*metrics, *PROVENANCE_COLUMNS]
    checked = 0
    for row in clips:
        for m in metrics:
            assert same(row[m], latest.get((row["clip_id"], m))), (row["uri"], row["kind"], m)
            checked += row[m] is not None
    assert checked >= 13 * 6
    # video_scores_wide: one row per ok video, holding its whole-video clip's scores.
    assert sorted(v["uri"] for v in videos) == sorted(v["uri"] for v in ok_videos)
    for v in videos:
        assert by_id[v["clip_id"]]["kind"] == "video" and by_id[v["clip_id"]]["uri"] == v["uri"]
        for m in metrics:
            assert same(v[m], latest.get((v["clip_id"], m))), (v["uri"], m)
    # The filter from the issue, unchanged: config B's aesthetic is the one compared.
    with seeded.connect() as conn:
        picked = conn.execute(sa.text(
            'SELECT uri FROM clip_scores_wide WHERE aesthetic > 5.5 AND "EMScore(X,V)_full_F" > 0.3')).scalars().all()
    assert picked == [BFYP]


def test_latest_score_wins(migrated_db):
    engine = get_engine(migrated_db)
    with engine.begin() as conn:
        vid = repo.upsert_video(conn, "/v.mp4", "sha256:v", None, status="ok")
        clip = repo.ensure_clip(conn, vid, "video", 0, 10, 0.0, 1.0)
        for h in ("old", "new", "tie1", "tie2"):
            repo.register_scorer_config(conn, "aesthetic", h, {"h": h})
        repo.write_scores(conn, clip, "aesthetic", "new", {"aesthetic": (7.0, None)}, None)
        repo.write_scores(conn, clip, "aesthetic", "old", {"aesthetic": (3.0, None)}, None)  # higher id
        # Same transaction, same created_at: the higher id (written second) wins.
        repo.write_scores(conn, clip, "aesthetic", "tie1", {"tied": (1.0, None)}, None)
        repo.write_scores(conn, clip, "aesthetic", "tie2", {"tied": (2.0, None)}, None)
        # A NaN and a NULL newer than a number: the column shows NULL, not the older number.
        repo.write_scores(conn, clip, "aesthetic", "old", {"undefined": (4.0, None), "nan": (5.0, None)}, None)
        conn.execute(sa.text("UPDATE scores SET created_at = created_at - interval '1 day' WHERE config_hash = 'old'"))
        repo.write_scores(conn, clip, "aesthetic", "new", {"undefined": (None, {"undefined": "x"}),
                                                            "nan": (float("nan"), None)}, None)
        refresh_wide_views(conn)
    with engine.connect() as conn:
        ids = dict(conn.execute(sa.text("SELECT config_hash, id FROM scores WHERE metric = 'aesthetic'")).all())
        assert ids["old"] > ids["new"]  # created_at decides before id
        (row,) = rows(conn, f"SELECT aesthetic, tied, undefined, nan FROM {CLIP_VIEW}")
        (video,) = rows(conn, f"SELECT aesthetic, tied FROM {VIDEO_VIEW}")
    assert row == {"aesthetic": 7.0, "tied": 2.0, "undefined": None, "nan": None}
    assert video == {"aesthetic": 7.0, "tied": 2.0}
    with engine.begin() as conn:  # now the old config is the newest
        conn.execute(sa.text("UPDATE scores SET created_at = now() + interval '1 day' WHERE config_hash = 'old'"))
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT aesthetic, undefined FROM {CLIP_VIEW}")).one() == (3.0, 4.0)


def test_new_metrics_get_columns_after_close_run_and_refresh_views(migrated_db):
    from vidqa.scoring.runs import close_run, open_run
    from vidqa.scoring.outcomes import RunSummary

    engine = get_engine(migrated_db)

    def columns(view=CLIP_VIEW):
        return [c["name"] for c in sa.inspect(engine).get_columns(view)]

    run_id = open_run("/src", {}, None, None)
    refs = Storage().list_videos(COUNTER)
    run_shard(engine, refs, TECHNICAL, uuid.UUID(run_id))
    assert "sharpness" not in columns()  # written, but the views were made before
    close_run(RunSummary(run_id=run_id, source="/src", n_videos=1, n_scored=1))
    assert "sharpness" in columns() and "sharpness" in columns(VIDEO_VIEW)
    with engine.connect() as conn:
        status = conn.execute(sa.text("SELECT status FROM runs WHERE id = :r"), {"r": run_id}).scalar()
        assert status == "completed"
        assert conn.execute(sa.text(f"SELECT sharpness FROM {VIDEO_VIEW}")).scalar() > 0

    with engine.begin() as conn:
        repo.register_scorer_config(conn, "aesthetic", "h", {})
        repo.write_scores(conn, whole_clip(conn, COUNTER), "aesthetic", "h", {"aesthetic": (6.0, None)}, None)
    assert "aesthetic" not in columns()
    out = vidqa_cli("db", "refresh-views", env={"VIDQA_DATABASE_URL": migrated_db})
    assert "aesthetic" in out.stdout
    metrics = sorted(["aesthetic", "luminance_mean", "luminance_min", "luminance_max", "sharpness", "mse_dyn",
                      "ssim_dyn", "ssim_sim"])
    assert columns() == [*FIXED_COLUMNS[CLIP_VIEW], *metrics, *PROVENANCE_COLUMNS]  # metrics sorted by name
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT aesthetic FROM {CLIP_VIEW}")).scalar() == 6.0


def test_long_and_reserved_metric_names(migrated_db):
    long_name = "EMScore(X,V)_" + "é" * 40 + "_full_F"  # 94 bytes
    engine = get_engine(migrated_db)
    with engine.begin() as conn:
        vid = repo.upsert_video(conn, "/v.mp4", "sha256:v", None, status="ok", width=640)
        clip = repo.ensure_clip(conn, vid, "video", 0, 10, 0.0, 1.0)
        repo.register_scorer_config(conn, "s", "h", {})
        repo.write_scores(conn, clip, "s", "h", {long_name: (0.5, None), "width": (2.0, None),
                                                 "video_path": (3.0, None)}, None)
        columns = refresh_wide_views(conn)
    long_col = metric_column(long_name)
    assert len(long_col.encode()) <= 63 and long_col.startswith("EMScore(X,V)_éé") and "~" in long_col
    assert metric_column("width").startswith("width~") and metric_column("aesthetic") == "aesthetic"
    assert sorted(columns) == sorted([long_col, metric_column("width"), metric_column("video_path")])
    with engine.connect() as conn:
        got = rows(conn, f'SELECT width, "{long_col}", "{metric_column("width")}" FROM {CLIP_VIEW}')
        comment = conn.execute(sa.text(
            "SELECT col_description(to_regclass(:v), attnum) FROM pg_attribute "
            "WHERE attrelid = to_regclass(:v) AND attname = :c"), {"v": CLIP_VIEW, "c": long_col}).scalar()
    assert got == [{"width": 640, long_col: 0.5, metric_column("width"): 2.0}]
    assert comment == f"latest score of metric {long_name}"


def test_concurrent_refreshes_do_not_collide(migrated_db):
    engine = get_engine(migrated_db)
    with engine.begin() as conn:
        vid = repo.upsert_video(conn, "/v.mp4", "sha256:v", None, status="ok")
        clip = repo.ensure_clip(conn, vid, "video", 0, 10, 0.0, 1.0)
        repo.register_scorer_config(conn, "s", "h", {})
        repo.write_scores(conn, clip, "s", "h", {f"m{i}": (float(i), None) for i in range(20)}, None)
    errors = []

    def refresh(barrier):
        try:
            barrier.wait()
            with engine.begin() as conn:
                refresh_wide_views(conn)
        except Exception as exc:  # collected: the assertion below names it
            errors.append(exc)

    for _ in range(4):
        barrier = threading.Barrier(3)
        threads = [threading.Thread(target=refresh, args=(barrier,)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT m19 FROM {CLIP_VIEW}")).scalar() == 19.0


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_export_writes_what_sql_selects(seeded, tmp_path):
    import pyarrow.parquet as pq

    tmp_path = tmp_path / "out"  # an export may create its folder

    env = {"VIDQA_DATABASE_URL": str(seeded.url.render_as_string(hide_password=False))}
    out = tmp_path / "x.jsonl"
    proc = vidqa_cli("export", "--where", "sharpness > 0", "--out", str(out), env=env)
    exported = read_jsonl(out)
    assert f"{len(exported)} rows written" in proc.stdout
    with seeded.connect() as conn:
        latest = latest_scores(conn)
        expected = rows(conn, """
            SELECT c.id, v.uri, c.start_time_s, c.end_time_s FROM scores s
            JOIN clips c ON c.id = s.clip_id JOIN videos v ON v.id = c.video_id
            WHERE v.status = 'ok' AND s.metric = 'sharpness' AND s.value > 0
              AND NOT EXISTS (SELECT 1 FROM scores t WHERE t.clip_id = s.clip_id AND t.metric = s.metric
                              AND (t.created_at, t.id) > (s.created_at, s.id))
            ORDER BY v.uri, c.start_time_s, c.id""")
        metrics = sorted({m for _, m in latest})
    assert 0 < len(expected) < 13  # the black windows of fades.mp4 have sharpness 0: a real filter
    assert [r["clip_id"] for r in exported] == [e["id"] for e in expected]
    for row, e in zip(exported, expected):
        assert row["video_path"] == row["uri"] == e["uri"]
        assert (row["start_time_s"], row["end_time_s"]) == (e["start_time_s"], e["end_time_s"])
        for m in metrics:
            assert same(row[m], latest.get((e["id"], m))), (e["uri"], m)
    text = out.read_text()
    assert "NaN" not in text and "null" in text  # windows have no aesthetic: null, not NaN

    pq_out = tmp_path / "x.parquet"
    vidqa_cli("export", "--where", "sharpness > 0", "--out", str(pq_out), env=env)
    table = pq.read_table(pq_out)
    assert table.column_names == list(exported[0])
    # Parquet holds the configs object as JSON text, mixed_configs as a list of strings.
    assert [{**r, "configs": json.loads(r["configs"])} for r in table.to_pylist()] == exported
    assert all(r["configs"]["sharpness"]["summary"].startswith("technical v1 uniform:2 ") for r in exported)
    # Every clip's latest aesthetic is config B's: nothing mixes in this view.
    assert exported[0]["mixed_configs"] == [] and str(table.schema.field("mixed_configs").type.value_type) == "string"
    assert str(table.schema.field(EMS).type) == "double" and str(table.schema.field("clip_id").type) == "int64"

    # --level video, a quoted metric, and the manifest feeds back into the storage layer.
    vout = tmp_path / "videos.jsonl"
    vidqa_cli("export", "--level", "video", "--where", f'aesthetic > 5.5 AND "{EMS}" > 0.3', "--out", str(vout),
              env=env)
    (picked,) = read_jsonl(vout)
    assert picked["uri"] == BFYP and picked["aesthetic"] == 6.0 and picked[EMS] == 0.35
    assert [r.uri for r in Storage().list_videos(str(vout))] == [BFYP]

    # '%' in a literal is not a placeholder; the rows come in (uri, start time, clip id) order.
    from vidqa.db.export import export_selection

    n = export_selection(seeded, "uri LIKE '%fades%' AND kind = 'window'", str(tmp_path / "fades.jsonl"))
    fades = read_jsonl(tmp_path / "fades.jsonl")
    assert n == len(fades) == 5 and {r["uri"] for r in fades} == {FADES}
    assert [r["start_time_s"] for r in fades] == sorted(r["start_time_s"] for r in fades)

    # An empty selection still writes a file (and a typed parquet schema).
    empty = tmp_path / "none.parquet"
    assert "0 rows written" in vidqa_cli("export", "--where", "aesthetic > 100", "--out", str(empty), env=env).stdout
    assert pq.read_table(empty).num_rows == 0 and pq.read_table(empty).schema == table.schema


def test_hostile_predicates_are_refused(seeded, tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    env = {"VIDQA_DATABASE_URL": str(seeded.url.render_as_string(hide_password=False))}

    def n_scores():
        with seeded.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM scores")).scalar()

    before = n_scores()
    for pred in HOSTILE:
        out = tmp_path / "bad.jsonl"
        proc = vidqa_cli("export", "--where", pred, "--out", str(out), env=env, check=False)
        assert proc.returncode == 2, (pred, proc.stdout, proc.stderr)
        assert "not a predicate over clip_scores_wide" in proc.stderr, pred
        assert not out.exists()
    assert n_scores() == before > 0

    from vidqa.db.export import PredicateError, export_selection

    more = [
        "pg_read_file('/etc/passwd') IS NOT NULL",
        "pg_catalog.pg_read_file('/etc/passwd') IS NOT NULL",
        "set_config('statement_timeout', '0', false) IS NOT NULL",
        "nextval('scores_id_seq') > 0",
        "lo_import('/etc/passwd') > 0",
        "dblink('dbname=x', 'DROP TABLE scores') IS NOT NULL",
        "sharpness > 0 ORDER BY pg_sleep(1)",
        "sharpness > 0 LIMIT 1",
        "sharpness > 0 FOR UPDATE",
        "sharpness > 0 GROUP BY uri",
        "EXISTS (SELECT 1 FROM scores)",
        "uri IN (SELECT uri FROM videos)",
        "count(*) > 0",
        "x::regclass IS NULL",
        "current_user = 'postgres'",
        "sharpness > $1",
        "scores.value > 0",
        "sharpness > 0; SELECT 1",
        "",
    ]
    for pred in more:
        with pytest.raises(PredicateError, match="not a predicate over clip_scores_wide"):
            export_selection(seeded, pred, str(tmp_path / "bad.jsonl"))
    assert list(tmp_path.iterdir()) == []
    assert n_scores() == before
    with seeded.connect() as conn:
        assert conn.execute(sa.text("SELECT to_regclass('scores') IS NOT NULL")).scalar()
        assert conn.execute(sa.text("SELECT current_setting('statement_timeout')")).scalar() == "0"


def test_postgres_layers_hold_without_the_parser(seeded, tmp_path, monkeypatch):
    """Layers 2 and 3 alone: with the parser check disabled, stacked statements, writes and
    slow calls still fail in Postgres, and nothing changes."""
    import vidqa.db.export as export
    from vidqa.db.export import ExportError, export_selection

    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    monkeypatch.setattr(export, "check_predicate", lambda where, view, columns: where)
    with seeded.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*), max(id) FROM scores")).one()
    cases = {
        # would drop the table if the text ran as two statements
        "true) ORDER BY uri; DROP TABLE scores; SELECT 1 FROM clip_scores_wide WHERE (true":
            "cannot insert multiple commands",
        "nextval('scores_id_seq') > 0": "read-only transaction",
        "pg_sleep(5) IS NOT NULL": "cancelled",
    }
    for pred, message in cases.items():
        with pytest.raises(ExportError, match=message):
            export_selection(seeded, pred, str(tmp_path / "bad.jsonl"), statement_timeout_s=1)
    assert list(tmp_path.iterdir()) == []
    with seeded.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*), max(id) FROM scores")).one() == before


def test_predicate_postgres_rejects_exits_2_and_leaves_no_file(seeded, tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    env = {"VIDQA_DATABASE_URL": str(seeded.url.render_as_string(hide_password=False))}
    out = tmp_path / "x.jsonl"
    out.write_text("an earlier export\n")
    proc = vidqa_cli("export", "--where", "uri > 5", "--out", str(out), env=env, check=False)
    assert proc.returncode == 2 and "operator does not exist" in proc.stderr
    proc = vidqa_cli("export", "--where", "nosuch > 1", "--out", str(out), env=env, check=False)
    assert proc.returncode == 2 and "unknown column 'nosuch'" in proc.stderr
    assert list(tmp_path.iterdir()) == [out] and out.read_text() == "an earlier export\n"  # no temp, no clobber


def percentile(sorted_values, q):
    """percentile_cont: linear interpolation between the closest ranks."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def doc_queries():
    text = (REPO / "README.md").read_text()
    section = text.split("### Ten queries for dataset filtering")[1].split("\n## ")[0]
    return re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)


def test_documented_queries_run(seeded):
    queries = doc_queries()
    assert len(queries) == 10
    with seeded.connect() as conn:
        raw = conn.connection.driver_connection
        raw.execute("SET TRANSACTION READ ONLY")
        try:
            results = {}
            for i, query in enumerate(queries, 1):
                results[i] = raw.execute(query).fetchall()
                assert results[i], f"query {i} returned no row on the test data:\n{query}"
                if i <= 4:  # over the wide views: each names its configurations
                    assert "_scores_wide_for(" in query, i
            long = raw.execute("SELECT metric, config_hash, value FROM scores WHERE value IS NOT NULL").fetchall()
        finally:
            raw.rollback()
    # Query 1 reads aesthetic config B (fractions), not whichever is newest: BFYP only.
    assert [r[0] for r in results[1]] == [BFYP]
    # Query 7: one row per metric and configuration, each from that configuration's values alone.
    values = {}
    for metric, config_hash, value in long:
        values.setdefault((metric, config_hash), []).append(value)
    assert {(r[0], r[2]) for r in results[7]} == set(values)
    for metric, summary, config_hash, n, p05, median, p95 in results[7]:
        v = sorted(values[(metric, config_hash)])
        assert summary.endswith(f"({config_hash[:8]})") and n == len(v)
        assert median == pytest.approx(percentile(v, 0.5)) and p05 == pytest.approx(percentile(v, 0.05))
        assert p95 == pytest.approx(percentile(v, 0.95))
    aesthetic = {r[2]: r[5] for r in results[7] if r[0] == "aesthetic"}
    assert aesthetic == {"aesA": pytest.approx(5.0), "aesB": pytest.approx(6.0)}  # medians of A and B apart
