"""One identity per video, on a real Postgres: a URI in its one spelling, and the same bytes
under another URI (a copy, a rename, another bucket) as a second location of one video whose
scores are reused without decoding; and the migration that merges what older code stored
under several spellings, losing nothing."""

import json
import os
import re
import shutil
import subprocess
import sys

import sqlalchemy as sa

from conftest import REPO, run_shard, vidqa_cli
from synthetic import distinct_video, distinct_videos
from vidqa.db import get_engine
from vidqa.db.export import export_selection
from vidqa.db.views import refresh_if_stale
from vidqa.scoring.job import ScorerSpec
from vidqa.scoring.ledger import unfinished_videos
from vidqa.scoring.queue import SCORER_CALLS
from vidqa.scoring.shard import build_scorers
from vidqa.storage import ObjectCache, Storage
from vidqa.storage.uris import normalise_uri, s3_uri
from vidqa.video.clips import ClipSpec

TECHNICAL = [ScorerSpec("technical", {"sampling": {"n": 2}})]
# The last commit before URIs had one spelling and content one row (its head is 0007).
PREVIOUS_COMMIT = "3d517de"


def query(url, sql, **params):
    engine = get_engine(url)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql), params)]


def count(url, table):
    return query(url, f"SELECT count(*) FROM {table}")[0][0]


def test_uris_have_one_spelling(tmp_path):
    real = tmp_path / "data"
    distinct_videos(real, 1)
    (tmp_path / "alias").symlink_to(real)
    want = os.path.realpath(real / "v00.mp4")
    for spelling in [f"{real}/../data/v00.mp4", f"{real}//v00.mp4", f"{tmp_path}/alias/v00.mp4",
                     f"file://{real}/./v00.mp4"]:
        assert normalise_uri(spelling) == want
    (tmp_path / "dangling.mp4").symlink_to(tmp_path / "nowhere.mp4")
    assert normalise_uri(str(tmp_path / "dangling.mp4")) == os.path.realpath(tmp_path) + "/dangling.mp4"
    assert s3_uri("  S3://bucket/a/b.mp4/ ") == "s3://bucket/a/b.mp4"
    # Keys are plain strings: an empty segment names another object, so it is kept.
    assert s3_uri("s3://bucket/a//b.mp4") == "s3://bucket/a//b.mp4"


def test_every_spelling_of_a_folder_gives_one_row_per_file(tmp_path, migrated_db, monkeypatch):
    data = tmp_path / "data"
    x = data / "x"
    files = distinct_videos(x, 2)
    (tmp_path / "link").symlink_to(x)
    (data / "work").mkdir()
    engine = get_engine(migrated_db)
    want = sorted(os.path.realpath(p) for p in files)

    calls = [SCORER_CALLS["technical"]]
    for cwd, spelling in [(data / "work", "../x"), (data, "./x/"), (data, str(x)), (data, str(tmp_path / "link")),
                          (data, f"{data}/work/../x")]:
        monkeypatch.chdir(cwd)
        refs = Storage().list_videos(spelling)
        assert [r.uri for r in refs] == want, spelling
        run_shard(engine, refs, TECHNICAL)
        calls.append(SCORER_CALLS["technical"])
    assert calls[1] == calls[0] + 2 and calls[2:] == [calls[1]] * 4  # scored by the first spelling only
    assert query(migrated_db, "SELECT uri FROM videos ORDER BY uri") == [(u,) for u in want]
    assert query(migrated_db, "SELECT uri FROM video_locations ORDER BY uri") == [(u,) for u in want]
    assert query(migrated_db, "SELECT count(*) FROM video_scores_wide") == [(2,)]


def test_the_cli_run_by_relative_and_absolute_path_scores_once(tmp_path, migrated_db, prefect_api_url):
    cli_env = {"VIDQA_DATABASE_URL": migrated_db, "PREFECT_API_URL": prefect_api_url}
    folder = tmp_path / "x"
    distinct_videos(folder, 2)
    relative = os.path.relpath(folder, REPO)  # vidqa_cli runs in the repository: "../../tmp/.../x"
    assert ".." in relative
    first = vidqa_cli("run", relative, "--frames", "2", env=cli_env)
    assert re.search(r"scored now\W+2\b", first.stdout), first.stdout
    second = vidqa_cli("run", f"{folder}/", "--frames", "2", env=cli_env)
    assert re.search(r"scored now\W+0\b", second.stdout) and re.search(r"\(skipped\)\W+2\b", second.stdout), \
        second.stdout
    videos = json.loads(vidqa_cli("videos", "--format", "json", env=cli_env).stdout)
    assert sorted(v["uri"] for v in videos) == sorted(os.path.realpath(p) for p in folder.iterdir())
    assert count(migrated_db, "runs") == 2


def test_a_copy_is_another_location_of_the_same_video(tmp_path, migrated_db):
    original = distinct_video(tmp_path / "a" / "clip.mp4", 7)
    (tmp_path / "b").mkdir()
    copy = tmp_path / "b" / "renamed.mp4"
    shutil.copy(original, copy)
    engine = get_engine(migrated_db)
    storage = Storage()

    run_shard(engine, storage.list_videos(str(tmp_path / "a")), TECHNICAL)
    before = SCORER_CALLS.copy()
    counts = {t: count(migrated_db, t) for t in ("videos", "clips", "scores")}
    refs = storage.list_videos(str(tmp_path / "b"))
    scorers = build_scorers(TECHNICAL)
    # Listed before its location is known: the shard records it (and decodes nothing).
    assert [r.uri for r in unfinished_videos(engine, refs, scorers, ClipSpec(), storage)] == [str(copy)]
    (outcome,) = run_shard(engine, refs, TECHNICAL).outcomes
    assert (outcome.status, outcome.from_ledger) == ("skipped", True)
    assert outcome.reason == f"already scored (the same bytes as {original})"
    assert SCORER_CALLS == before  # no scorer ran
    assert {t: count(migrated_db, t) for t in counts} == counts  # no video, clip or score added
    assert unfinished_videos(engine, refs, scorers, ClipSpec(), storage) == []
    assert query(migrated_db, "SELECT v.uri, l.uri FROM video_locations l JOIN videos v ON v.id = l.video_id "
                              "ORDER BY l.first_seen_at") == [(str(original), str(original)), (str(original), str(copy))]

    refresh_if_stale(engine)  # what closing a run does: the views gain the new metrics
    out = tmp_path / "picked.jsonl"
    assert export_selection(engine, "sharpness >= 0", str(out), level="video") == 1
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["video_path"] == str(original)
    assert row["locations"] == [str(original), str(copy)]

    # A copy that was edited is other bytes: a video of its own, scored.
    with open(copy, "ab") as f:
        f.write(b"\0" * 16)
    (outcome,) = run_shard(engine, storage.list_videos(str(copy)), TECHNICAL).outcomes
    assert outcome.status == "scored"
    assert SCORER_CALLS["technical"] == before["technical"] + 1
    assert count(migrated_db, "videos") == 2


def test_the_same_object_in_two_buckets_is_scored_once(s3_endpoint, tmp_path, migrated_db):
    clip = distinct_video(tmp_path / "clip.mp4", 11)
    client = s3_endpoint.client
    client.create_bucket(Bucket="vidqa-mirror")
    first = s3_endpoint.put("identity/clip.mp4", clip)
    client.put_object(Bucket="vidqa-mirror", Key="elsewhere/same.mp4", Body=clip.read_bytes())
    storage = Storage(s3_endpoint.options(), ObjectCache(tmp_path / "cache", 1 << 30), base_delay_s=0.01)
    engine = get_engine(migrated_db)

    run_shard(engine, storage.list_videos(first), TECHNICAL, storage=storage)
    before = SCORER_CALLS.copy()
    (outcome,) = run_shard(engine, storage.list_videos("s3://vidqa-mirror/elsewhere/"), TECHNICAL,
                           storage=storage).outcomes
    assert (outcome.status, outcome.uri) == ("skipped", "s3://vidqa-mirror/elsewhere/same.mp4")
    assert SCORER_CALLS == before
    assert query(migrated_db, "SELECT uri FROM video_locations ORDER BY first_seen_at") == [
        (first,), ("s3://vidqa-mirror/elsewhere/same.mp4",)]

    # A multipart upload of the same bytes has another ETag (an MD5 of part MD5s): it is
    # another content id, so it is scored again (see docs/identity.md).
    upload = client.create_multipart_upload(Bucket="vidqa-mirror", Key="multipart/same.mp4")
    body = clip.read_bytes()
    part = client.upload_part(Bucket="vidqa-mirror", Key="multipart/same.mp4", PartNumber=1,
                              UploadId=upload["UploadId"], Body=body)
    client.complete_multipart_upload(Bucket="vidqa-mirror", Key="multipart/same.mp4", UploadId=upload["UploadId"],
                                     MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
    (ref,) = storage.list_videos("s3://vidqa-mirror/multipart/same.mp4")
    assert ref.etag.endswith("-1")
    (outcome,) = run_shard(engine, [ref], TECHNICAL, storage=storage).outcomes
    assert outcome.status == "scored"


PREVIOUS_RUN = """
import json, sys
from vidqa.db import get_engine, upgrade
from vidqa.scoring.job import ScorerSpec, ShardJob
from vidqa.scoring.shard import score_shard
from vidqa.storage import Storage
from vidqa.video.clips import ClipSpec

url, jobs = sys.argv[1], json.loads(sys.argv[2])
upgrade("head", url)
engine = get_engine(url)
for source, sampling_n, clips in jobs:
    job = ShardJob(refs=Storage().list_videos(source), scorers=[ScorerSpec("technical", {"sampling": {"n": sampling_n}})],
                   clips=ClipSpec.model_validate(clips))
    result = score_shard(engine, job)
    print("OUTCOMES", json.dumps([o.status for o in result.outcomes]))
"""

# Every score as content, clip span, scorer, configuration, input, metric -> value.
SCORES_BY_CONTENT = """
SELECT v.content_id, c.split_hash, c.kind, c.start_frame, c.end_frame, s.scorer, s.config_hash, s.input_hash,
       s.metric, s.value
FROM scores s JOIN clips c ON c.id = s.clip_id JOIN videos v ON v.id = c.video_id
"""


def test_the_migration_merges_spellings_stored_by_the_previous_code_and_loses_nothing(tmp_path, database_url,
                                                                                     monkeypatch):
    tree = tmp_path / "previous"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", PREVIOUS_COMMIT, "vidqa", "migrations"],
                             capture_output=True, check=False)
    assert archive.returncode == 0, f"commit {PREVIOUS_COMMIT} is needed from the history: {archive.stderr.decode()}"
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    data = tmp_path / "data"
    files = distinct_videos(data / "x", 2)
    (data / "work").mkdir()
    (tmp_path / "link").symlink_to(data / "x")
    shutil.copy(files[0], data / "copy.mp4")
    (data / "x" / "broken.mp4").write_bytes(b"")
    windows = {"method": "windows", "window_s": 1.0, "min_s": 0.5}
    jobs = [["../x", 2, {}], [str(data / "x"), 2, {}], [str(tmp_path / "link"), 3, {}],
            [str(data / "copy.mp4"), 2, {}], ["../x", 2, windows], [str(tmp_path / "link"), 2, windows]]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run([sys.executable, "-c", PREVIOUS_RUN, database_url, json.dumps(jobs)], cwd=data / "work",
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert query(database_url, "SELECT version_num FROM alembic_version") == [("0007",)]
    old_videos = query(database_url, "SELECT id, uri, content_id, status FROM videos ORDER BY id")
    contents = {c for _, _, c, _ in old_videos}
    assert len(old_videos) == 10 and len(contents) == 3  # 3 spellings x 3 files + the copy
    old_scores = query(database_url, SCORES_BY_CONTENT)
    # The same identity was scored under several spellings, with the same values.
    assert len(old_scores) > len(set(r[:-1] for r in old_scores))
    by_identity = {}
    for r in old_scores:
        by_identity.setdefault(r[:-1], set()).add(r[-1])
    assert all(len(values) == 1 for values in by_identity.values())

    from vidqa.db import upgrade

    upgrade("head", database_url)
    new_videos = query(database_url, "SELECT id, uri, content_id, status FROM videos ORDER BY id")
    oldest = {}
    for vid, uri, cid, status in old_videos:
        oldest.setdefault(cid, (vid, status))
    assert [(v, c, s) for v, _, c, s in new_videos] == sorted((vid, cid, status) for cid, (vid, status) in oldest.items())
    real = {os.path.realpath(p) for p in [*files, data / "x" / "broken.mp4"]}
    assert {u for _, u, _, _ in new_videos} == real  # each kept row under its one spelling
    new_scores = query(database_url, SCORES_BY_CONTENT)
    assert len(new_scores) == len(by_identity)  # one row per identity
    assert {r[:-1]: {r[-1]} for r in new_scores} == by_identity  # every identity kept, with its value
    locations = query(database_url, "SELECT v.content_id, l.uri FROM video_locations l "
                                    "JOIN videos v ON v.id = l.video_id")
    assert sorted(locations) == sorted({(cid, os.path.realpath(uri)) for _, uri, cid, _ in old_videos})
    assert (next(c for _, u, c, _ in new_videos if u == os.path.realpath(files[0])),
            os.path.realpath(data / "copy.mp4")) in locations
    splits = query(database_url, "SELECT video_id, split_hash FROM video_splits")
    assert len(splits) == len(set(splits)) == 4  # each good file: whole and windows, once each

    # The current code finds all of it: nothing is scored again under any spelling.
    engine = get_engine(database_url)
    before = SCORER_CALLS.copy()
    monkeypatch.chdir(data / "work")
    for source, n, clips in jobs:
        refs = Storage().list_videos(source)
        run_shard(engine, refs, [ScorerSpec("technical", {"sampling": {"n": n}})],
                  clip_spec=ClipSpec.model_validate(clips))
    assert SCORER_CALLS == before
    assert len(query(database_url, SCORES_BY_CONTENT)) == len(by_identity)


def test_the_merge_keeps_the_newer_value_and_drops_only_failures_of_scored_work(tmp_path, database_url):
    """Rows of one content as older code could leave them (SQL as of 0008): the same clip
    span on both, one identity scored on both with different values (the newer run wins), a
    failure on the kept row of work the other row scored, a failure and a score that meet
    nothing, and two placeholders of one unreadable file."""
    from vidqa.db import upgrade

    upgrade("0008", database_url)
    folder = tmp_path / "x"
    folder.mkdir()
    (tmp_path / "alias").symlink_to(folder)
    real = os.path.realpath(folder / "a.mp4")
    engine = get_engine(database_url)
    with engine.begin() as conn:
        def one(sql, **p):
            return conn.execute(sa.text(sql), p).scalar()

        old_run = one("INSERT INTO runs (id, source, parameters, vidqa_version, status, started_at) "
                      "VALUES (gen_random_uuid(), 'x', '{}', '0', 'completed', now() - interval '2 days') RETURNING id")
        new_run = one("INSERT INTO runs (id, source, parameters, vidqa_version, status, started_at) "
                      "VALUES (gen_random_uuid(), 'x', '{}', '0', 'completed', now() - interval '1 day') RETURNING id")
        keep = one("INSERT INTO videos (uri, content_id, status) VALUES (:u, 'sha256:a', 'ok') RETURNING id",
                   u=f"{tmp_path}/x/../x/a.mp4")
        dup = one("INSERT INTO videos (uri, content_id, status) VALUES (:u, 'sha256:a', 'ok') RETURNING id",
                  u=f"{tmp_path}/alias/a.mp4")
        for uri in (f"{tmp_path}/x/gone.mp4", f"{tmp_path}/alias/gone.mp4"):
            one("INSERT INTO videos (uri, content_id, status, failure_reason) VALUES (:u, '', 'failed', 'file not found') "
                "RETURNING id", u=uri)
        clips = {}
        for vid in (keep, dup):
            clips[vid] = one("INSERT INTO clips (video_id, kind, start_frame, end_frame, start_time_s, end_time_s) "
                             "VALUES (:v, 'video', 0, 75, 0, 3) RETURNING id", v=vid)
        for h in ("h1", "h2", "h3"):
            conn.execute(sa.text("INSERT INTO scorer_configs (config_hash, scorer, config) VALUES (:h, 't', '{}')"),
                         {"h": h})

        def score(vid, h, metric, value, run):
            conn.execute(sa.text("INSERT INTO scores (clip_id, scorer, config_hash, metric, value, run_id) "
                                 "VALUES (:c, 't', :h, :m, :v, :r)"),
                         {"c": clips[vid], "h": h, "m": metric, "v": value, "r": run})

        def failure(vid, h, reason):
            conn.execute(sa.text("INSERT INTO scorer_failures (clip_id, scorer, config_hash, reason) "
                                 "VALUES (:c, 't', :h, :r)"), {"c": clips[vid], "h": h, "r": reason})

        score(dup, "h1", "m", 2.0, new_run)   # written first, by the newer run
        score(keep, "h1", "m", 1.0, old_run)  # written later (created_at), by the older run
        score(dup, "h2", "m", 5.0, new_run)
        failure(keep, "h2", "boom")  # moot: the other spelling scored h2
        failure(dup, "h3", "no caption")
        score(keep, "h1", "other", 7.0, old_run)

    upgrade("head", database_url)
    assert query(database_url, "SELECT id, uri FROM videos WHERE content_id <> '' ORDER BY id") == [(keep, real)]
    got = query(database_url, "SELECT c.video_id, s.config_hash, s.metric, s.value, s.run_id FROM scores s "
                              "JOIN clips c ON c.id = s.clip_id ORDER BY s.config_hash, s.metric")
    assert got == [(keep, "h1", "m", 2.0, new_run), (keep, "h1", "other", 7.0, old_run),
                   (keep, "h2", "m", 5.0, new_run)]
    assert query(database_url, "SELECT c.video_id, f.config_hash, f.reason FROM scorer_failures f "
                               "JOIN clips c ON c.id = f.clip_id") == [(keep, "h3", "no caption")]
    assert query(database_url, "SELECT count(*) FROM clips") == [(1,)]
    assert query(database_url, "SELECT uri, content_id FROM videos WHERE content_id = ''") == [
        (os.path.realpath(tmp_path / "x") + "/gone.mp4", "")]
    assert sorted(query(database_url, "SELECT video_id, uri FROM video_locations WHERE video_id = :v", v=keep)) == [
        (keep, real)]
