"""Runs that meet: two shards (threads of one process, and two `vidqa run` processes) over the
same videos score each video once; a claim whose holder died lapses and is taken over; a live
claim is waited for, not scored around (real Postgres, real CLI processes)."""

import re
import subprocess
import threading
import time
from datetime import timedelta

import sqlalchemy as sa

from conftest import REPO, run_shard
from synthetic import distinct_video, distinct_videos
from vidqa.db import get_engine
from vidqa.scoring.job import ScorerSpec
from vidqa.scoring.ledger import identify
from vidqa.storage import Storage

TECHNICAL = [ScorerSpec("technical", {"sampling": {"n": 4}})]


def test_two_shards_over_the_same_videos_score_each_once(tmp_path, migrated_db):
    from vidqa.scoring.queue import SCORER_CALLS

    paths = distinct_videos(tmp_path / "v", 6)
    engine = get_engine(migrated_db)
    refs = Storage().list_videos(str(tmp_path / "v"))
    start = threading.Barrier(2)
    results = [None, None]

    def shard(i):
        start.wait()
        results[i] = run_shard(engine, refs, TECHNICAL)

    before = SCORER_CALLS["technical"]
    threads = [threading.Thread(target=shard, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert SCORER_CALLS["technical"] - before == len(paths)  # no video scored twice
    statuses = [[o.status for o in r.outcomes] for r in results]
    scored_by = [sum(s == "scored" for s in per_video) for per_video in zip(*statuses)]
    assert scored_by == [1] * len(paths), statuses  # each by one shard; the other found it done
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM video_claims")).scalar_one() == 0  # all released
        assert conn.execute(sa.text("SELECT count(*) FROM videos WHERE status = 'ok'")).scalar_one() == len(paths)


def _claim(engine, content_id, holder, expires_in_s):
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO video_claims (content_id, holder, expires_at) "
                             "VALUES (:c, :h, now() + :e)"),
                     {"c": content_id, "h": holder, "e": timedelta(seconds=expires_in_s)})


def test_a_lapsed_claim_is_taken_over_and_a_live_one_waited_for(tmp_path, migrated_db):
    engine = get_engine(migrated_db)
    storage = Storage()
    lapsed, live = distinct_video(tmp_path / "lapsed.mp4", 1), distinct_video(tmp_path / "live.mp4", 2)
    (lapsed_ref,), (live_ref,) = storage.list_videos(str(lapsed)), storage.list_videos(str(live))
    _claim(engine, identify(engine, storage, lapsed_ref)[1], "a shard killed an hour ago", -3600)
    started = time.monotonic()
    (outcome,) = run_shard(engine, [lapsed_ref], TECHNICAL).outcomes
    assert outcome.status == "scored" and time.monotonic() - started < 30

    # A live claim that is never renewed (its holder died just now) lapses after its lease.
    _claim(engine, identify(engine, storage, live_ref)[1], "a shard killed just now", 4)
    started = time.monotonic()
    (outcome,) = run_shard(engine, [live_ref], TECHNICAL).outcomes
    waited = time.monotonic() - started
    assert outcome.status == "scored" and 3.0 <= waited < 60, waited


def test_two_cli_runs_started_together_score_each_video_once(tmp_path, migrated_db, prefect_api_url):
    import os
    import shutil

    n = 10
    distinct_videos(tmp_path / "v", n, seconds=6.0)
    env = {**os.environ, "VIDQA_DATABASE_URL": migrated_db, "PREFECT_API_URL": prefect_api_url}
    procs = [subprocess.Popen([shutil.which("vidqa"), "run", str(tmp_path / "v"), "--sampling", "all",
                               "--shard-size", "1"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    scored = [int(re.search(r"scored now\s*\S\s*(\d+)", out).group(1)) for out, _ in outs]
    skipped = [int(re.search(r"already scored \(skipped\)\s*\S\s*(\d+)", out).group(1)) for out, _ in outs]
    assert sum(scored) == n and [a + b for a, b in zip(scored, skipped)] == [n, n], outs
    with get_engine(migrated_db).connect() as conn:
        per_run = dict(conn.execute(sa.text(
            "SELECT r.id, r.n_scored FROM runs r ORDER BY r.started_at")).all())
        assert sorted(per_run.values()) == sorted(scored)  # the runs table says the same
        assert conn.execute(sa.text("SELECT count(DISTINCT clip_id) FROM scores")).scalar_one() == n
