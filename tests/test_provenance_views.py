"""Provenance in the wide views on a real Postgres: which configuration each value came from
(``configs``), which metrics mix configurations (``mixed_configs``), selecting configurations
explicitly (``*_scores_wide_for``), units in the column comments, and migration 0008."""

import json
import subprocess
import sys
from datetime import datetime

import psycopg
import pytest
import sqlalchemy as sa

from conftest import REPO, VIDEOS, run_shard
from vidqa.db import downgrade, get_engine, repository as repo, upgrade
from vidqa.db.views import (
    CLIP_VIEW, FIXED_COLUMNS, FUNCTIONS, PROVENANCE_COLUMNS, VIDEO_VIEW, fixed_columns, refresh_wide_views,
)
from vidqa.scoring.job import ScorerSpec
from vidqa.scoring.provenance import config_summary
from vidqa.storage import Storage

# Two configurations of the technical scorer (4 and 16 frames) sharing a 12-digit prefix, and
# an aesthetic one.
A, B, C = "a1b2c3d4e5f60004", "a1b2c3d4e5f60016", "ffee0011aabbccdd"
IDENTITIES = {
    A: {"scorer": "technical", "version": "1", "config": {"sampling": {"method": "uniform", "n": 4}}},
    B: {"scorer": "technical", "version": "1", "config": {"sampling": {"method": "uniform", "n": 16}}},
    C: {"scorer": "aesthetic", "version": "2", "config": {"sampling": {"method": "fractions",
                                                                        "fractions": [0.1, 0.5, 0.9]}}},
}
URIS = ["/data/v1.mp4", "/data/v2.mp4", "/data/v3.mp4"]


def rows(conn, query, **params):
    return [dict(r._mapping) for r in conn.execute(sa.text(query), params)]


@pytest.fixture
def two_configs(migrated_db):
    """Three videos, each a whole clip and a window. Config A scores sharpness and luminance
    of every clip; config B (later) rescores sharpness of v1 and v2 whole only; C scores the
    aesthetic of every whole clip."""
    engine = get_engine(migrated_db)
    with engine.begin() as conn:
        for h, identity in IDENTITIES.items():
            repo.register_scorer_config(conn, identity["scorer"], h, identity, config_summary(h, identity))
        for n, uri in enumerate(URIS):
            vid = repo.upsert_video(conn, uri, f"sha256:{n}", None, status="ok")
            whole = repo.ensure_clip(conn, vid, "video", 0, 100, 0.0, 4.0)
            window = repo.ensure_clip(conn, vid, "window", 0, 50, 0.0, 2.0, split_hash="w2")
            for clip, k in ((whole, 0), (window, 1)):
                repo.write_scores(conn, clip, "technical", A, {"sharpness": (400.0 + 10 * n + k, None),
                                                               "luminance_mean": (0.2 + n / 10 + k / 100, None)}, None)
            repo.write_scores(conn, whole, "aesthetic", C, {"aesthetic": (5.0 + n, None)}, None)
    with engine.begin() as conn:  # a later transaction: B's scores are newer
        conn.execute(sa.text("UPDATE scores SET created_at = created_at - interval '1 hour'"))
        for uri in URIS[:2]:
            clip = conn.execute(sa.text("SELECT c.id FROM clips c JOIN videos v ON v.id = c.video_id "
                                        "WHERE v.uri = :u AND c.kind = 'video'"), {"u": uri}).scalar_one()
            repo.write_scores(conn, clip, "technical", B, {"sharpness": (450.0 + URIS.index(uri), None)}, None)
        refresh_wide_views(conn)
    return engine


def long_scores(conn, configs=None):
    """Every score with its configuration's summary, from the long table."""
    return rows(conn, "SELECT s.id, s.clip_id, s.metric, s.value, s.config_hash, s.created_at, c.summary, "
                      "cl.kind = 'video' AND cl.split_hash = '' AS whole "
                      "FROM scores s JOIN scorer_configs c USING (config_hash) JOIN clips cl ON cl.id = s.clip_id "
                      "WHERE CAST(:configs AS text[]) IS NULL OR s.config_hash = ANY(CAST(:configs AS text[]))",
                configs=configs)


def pick_latest(scores, whole_only=False):
    """{(clip_id, metric): the winning score row}: latest created_at, then highest id."""
    best = {}
    for r in scores:
        if whole_only and not r["whole"]:
            continue
        key = (r["clip_id"], r["metric"])
        if key not in best or (r["created_at"], r["id"]) > (best[key]["created_at"], best[key]["id"]):
            best[key] = r
    return best


def mixing(best):
    hashes = {}
    for (_, metric), r in best.items():
        hashes.setdefault(metric, set()).add(r["config_hash"])
    return sorted(m for m, h in hashes.items() if len(h) > 1)


def check_rows(got, best, metrics):
    """Each row's values and configs agree with the independent pick from the long table."""
    checked = 0
    for row in got:
        mine = {m: r for (clip, m), r in best.items() if clip == row["clip_id"]}
        assert set(row["configs"]) == set(mine), row["clip_id"]
        for m in metrics:
            if m not in mine:
                assert row[m] is None, (row["clip_id"], m)
                continue
            r = mine[m]
            assert row[m] == r["value"], (row["clip_id"], m)
            assert row["configs"][m]["config_hash"] == r["config_hash"]
            assert row["configs"][m]["summary"] == r["summary"]
            assert datetime.fromisoformat(row["configs"][m]["scored_at"]) == r["created_at"]
            checked += 1
    return checked


def test_the_view_names_the_configuration_of_each_value(two_configs):
    metrics = ["aesthetic", "luminance_mean", "sharpness"]
    with two_configs.connect() as conn:
        conn.execute(sa.text("SET TIME ZONE 'UTC'"))
        scores = long_scores(conn)
        clip_rows = rows(conn, f"SELECT * FROM {CLIP_VIEW}")
        video_rows = rows(conn, f"SELECT * FROM {VIDEO_VIEW}")
    best = pick_latest(scores)
    assert {r["config_hash"] for (_, m), r in best.items() if m == "sharpness"} == {A, B}  # a real mix
    assert len(clip_rows) == 6 and check_rows(clip_rows, best, metrics) == 6 + 6 + 3
    assert mixing(best) == ["sharpness"]
    assert all(r["mixed_configs"] == ["sharpness"] for r in clip_rows)
    sharp = {r["uri"]: (r["sharpness"], r["configs"]["sharpness"]["summary"]) for r in clip_rows if r["kind"] == "video"}
    assert sharp == {"/data/v1.mp4": (450.0, f"technical v1 uniform:16 ({B[:8]})"),
                     "/data/v2.mp4": (451.0, f"technical v1 uniform:16 ({B[:8]})"),
                     "/data/v3.mp4": (420.0, f"technical v1 uniform:4 ({A[:8]})")}
    whole = pick_latest(scores, whole_only=True)
    assert len(video_rows) == 3 and check_rows(video_rows, whole, metrics) == 3 * 3
    assert all(r["mixed_configs"] == mixing(whole) == ["sharpness"] for r in video_rows)
    assert list(clip_rows[0])[-2:] == list(PROVENANCE_COLUMNS)


@pytest.mark.parametrize("view", [CLIP_VIEW, VIDEO_VIEW])
def test_selecting_one_configuration_gives_its_values_only(two_configs, view):
    metrics = ["aesthetic", "luminance_mean", "sharpness"]
    fn = FUNCTIONS[view]
    with two_configs.connect() as conn:
        conn.execute(sa.text("SET TIME ZONE 'UTC'"))
        view_columns = list(rows(conn, f"SELECT * FROM {view}")[0])
        for selection, selectors in {(A,): [A], (B,): [B[:15]], (B, C): [B, C[:8]]}.items():
            got = rows(conn, f"SELECT * FROM {fn}(:s)", s=selectors)
            best = pick_latest(long_scores(conn, list(selection)), whole_only=view == VIDEO_VIEW)
            assert list(got[0]) == view_columns  # the view's row type
            assert len(got) == (6 if view == CLIP_VIEW else 3)
            assert check_rows(got, best, metrics) == len(best) > 0
            assert {c["config_hash"] for r in got for c in r["configs"].values()} == set(selection)
            assert all(r["mixed_configs"] == [] for r in got)
        a_sharp = rows(conn, f"SELECT uri, sharpness FROM {fn}(ARRAY(SELECT config_hash FROM scorer_configs "
                             "WHERE summary LIKE 'technical v1 uniform:4 %')) WHERE kind IS DISTINCT FROM 'window'"
                       if view == CLIP_VIEW else
                       f"SELECT uri, sharpness FROM {fn}(ARRAY(SELECT config_hash FROM scorer_configs "
                       "WHERE summary LIKE 'technical v1 uniform:4 %'))")
    # Config A's whole-video sharpness, never B's newer values.
    assert sorted((r["uri"], r["sharpness"]) for r in a_sharp) == [
        ("/data/v1.mp4", 400.0), ("/data/v2.mp4", 410.0), ("/data/v3.mp4", 420.0)]


@pytest.mark.parametrize("selectors, message", [
    (["a1b2c3d4"], "ambiguous scorer configuration 'a1b2c3d4': 2 config hashes start with it"),
    (["deadbeef00"], "unknown scorer configuration 'deadbeef00'"),
    (["a1b2"], "a prefix needs at least 8 characters"),
    ([], "no scorer configuration selected"),
    ([None], "unknown scorer configuration NULL"),
])
def test_an_unknown_ambiguous_or_empty_selection_fails(two_configs, selectors, message):
    for fn in FUNCTIONS.values():
        with two_configs.connect() as conn:
            with pytest.raises(sa.exc.DBAPIError, match=message.replace("(", r"\(")) as info:
                conn.execute(sa.text(f"SELECT * FROM {fn}(CAST(:s AS text[]))"), {"s": selectors})
            assert isinstance(info.value.orig, psycopg.errors.RaiseException)


def column_comments(conn, relation):
    return dict(conn.execute(sa.text(
        "SELECT attname, col_description(attrelid, attnum) FROM pg_attribute "
        "WHERE attrelid = to_regclass(:r) AND attnum > 0 AND NOT attisdropped"), {"r": relation}).all())


def test_every_view_column_has_a_comment_and_metric_columns_their_units(two_configs):
    with two_configs.connect() as conn:
        comments = {view: column_comments(conn, view) for view in (CLIP_VIEW, VIDEO_VIEW)}
        functions = dict(conn.execute(sa.text(
            "SELECT proname, obj_description(oid, 'pg_proc') FROM pg_proc WHERE proname = ANY(:f)"),
            {"f": [*FUNCTIONS.values(), "resolve_scorer_configs"]}).all())
    for view, by_column in comments.items():
        assert list(by_column)[:len(FIXED_COLUMNS[view])] == list(FIXED_COLUMNS[view])
        assert [c for c, text in by_column.items() if not text] == []
        assert by_column["luminance_mean"].startswith("latest score of metric luminance_mean: ")
        assert "0 (black) to 1 (white)" in by_column["luminance_mean"]
        assert "0-255 scale" in by_column["sharpness"] and "about 1 to 10" in by_column["aesthetic"]
        assert "config_hash" in by_column["configs"] and "more than one" in by_column["mixed_configs"]
    assert set(functions) == {*FUNCTIONS.values(), "resolve_scorer_configs"} and all(functions.values())


def test_metric_docs_name_exactly_each_scorers_metrics_and_import_no_torch():
    from vidqa.scorers import SCORERS
    from vidqa.scorers.metric_docs import METRIC_DOCS

    assert set(METRIC_DOCS) == set(SCORERS)
    for name in SCORERS:
        assert set(METRIC_DOCS[name]) == set(SCORERS[name].metrics), name
        assert all(len(doc) > 20 for doc in METRIC_DOCS[name].values())
    code = ("import sys\nfrom vidqa.db.views import default_metric_docs\n"
            "assert len(default_metric_docs()) > 30\nprint('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "False"


def test_a_run_records_the_summary_of_its_configuration(migrated_db):
    engine = get_engine(migrated_db)
    refs = Storage().list_videos(str(VIDEOS / "counter.mp4"))
    run_shard(engine, refs, [ScorerSpec("technical", {"sampling": {"n": 3}})])
    with engine.connect() as conn:
        (row,) = rows(conn, "SELECT config_hash, config, summary FROM scorer_configs")
    assert row["summary"] == config_summary(row["config_hash"], row["config"])
    assert row["summary"] == f"technical v1 uniform:3 ({row['config_hash'][:8]})"


def test_migration_0008_fills_summaries_and_round_trips(database_url):
    upgrade("0007", database_url)
    engine = get_engine(database_url)
    videoscore = {"scorer": "videoscore", "version": "1", "config": {"model": "TIGER-Lab/VideoScore"},
                  "frames": {"method": "linspace", "n": 16}}
    with engine.begin() as conn:  # SQL as of 0007 (no summary column), not today's repository code
        vid = conn.execute(sa.text(
            "INSERT INTO videos (uri, content_id, status) VALUES ('/v.mp4', 'sha256:v', 'ok') RETURNING id")).scalar()
        clip = conn.execute(sa.text(
            "INSERT INTO clips (video_id, kind, start_frame, end_frame, start_time_s, end_time_s) "
            "VALUES (:v, 'video', 0, 10, 0, 1) RETURNING id"), {"v": vid}).scalar()
        for h, identity in {**IDENTITIES, "0123456789abcdef": videoscore}.items():
            conn.execute(sa.text("INSERT INTO scorer_configs (config_hash, scorer, config) "
                                 "VALUES (:h, :s, CAST(:c AS jsonb))"),
                         {"h": h, "s": identity["scorer"], "c": json.dumps(identity)})
        for h, value in ((A, 3.0), (B, 4.0)):
            conn.execute(sa.text("INSERT INTO scores (clip_id, scorer, config_hash, metric, value, created_at) "
                                 "VALUES (:c, 'technical', :h, 'sharpness', :v, now() + :v * interval '1 s')"),
                         {"c": clip, "h": h, "v": value})
    assert [c["name"] for c in sa.inspect(engine).get_columns(CLIP_VIEW)] == list(fixed_columns(CLIP_VIEW, "0007"))

    upgrade("0008", database_url)
    with engine.connect() as conn:
        summaries = dict(conn.execute(sa.text("SELECT config_hash, summary FROM scorer_configs")).all())
        comment = column_comments(conn, "scorer_configs")["summary"]
        (row,) = rows(conn, f"SELECT sharpness, configs, mixed_configs FROM {CLIP_VIEW}")
        selected = rows(conn, f"SELECT sharpness FROM {FUNCTIONS[CLIP_VIEW]}(ARRAY[:a])", a=A)
    # The migration's frozen rules give what the code gives today.
    assert summaries == {h: config_summary(h, i) for h, i in {**IDENTITIES, "0123456789abcdef": videoscore}.items()}
    assert summaries["0123456789abcdef"] == "videoscore v1 linspace:16 (01234567)"
    assert comment and "e.g. technical v1 uniform:16" in comment
    assert row["sharpness"] == 4.0 and row["configs"]["sharpness"]["config_hash"] == B
    assert row["mixed_configs"] == [] and selected == [{"sharpness": 3.0}]

    downgrade("0007", database_url)
    insp = sa.inspect(engine)
    assert "summary" not in {c["name"] for c in insp.get_columns("scorer_configs")}
    for view in (CLIP_VIEW, VIDEO_VIEW):
        assert [c["name"] for c in insp.get_columns(view)] == [*fixed_columns(view, "0007"), "sharpness"]
    with engine.connect() as conn:
        left = conn.execute(sa.text("SELECT proname FROM pg_proc WHERE proname = ANY(:f)"),
                            {"f": [*FUNCTIONS.values(), "resolve_scorer_configs"]}).scalars().all()
        assert left == []
        assert conn.execute(sa.text(f"SELECT sharpness FROM {CLIP_VIEW}")).scalar() == 4.0
    upgrade("0008", database_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(summary) FROM scorer_configs")).scalar() == 4
