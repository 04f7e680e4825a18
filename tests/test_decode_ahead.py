"""Decoding ahead (VIDQA_DECODE_WORKERS): videos are fetched, probed and decoded in threads while
the scorers score in the shard's own thread. The rows are those of one video after the other,
a bad video is still its own recorded failure, and no model runs outside the shard's thread."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from conftest import fresh_database, run_shard
from synthetic import distinct_videos
from vidqa.config import reload_settings
from vidqa.db import get_engine, upgrade
from vidqa.scorers.technical import TechnicalScorer
from vidqa.scoring.job import ScorerSpec
from vidqa.storage import Storage
from vidqa.video import sampling

SPECS = [ScorerSpec("technical", {"sampling": {"n": 4}})]


def rows(url):
    with get_engine(url).connect() as conn:
        scores = conn.execute(sa.text(
            "SELECT v.uri, c.start_frame, s.metric, s.value FROM scores s JOIN clips c ON c.id = s.clip_id "
            "JOIN videos v ON v.id = c.video_id ORDER BY 1, 2, 3")).all()
        videos = conn.execute(sa.text("SELECT uri, status, failure_reason FROM videos ORDER BY 1")).all()
    return scores, videos


def test_decoding_ahead_gives_the_same_rows_and_scores_in_the_shards_thread(tmp_path, pg_admin_url, bad_inputs,
                                                                           monkeypatch):
    folder = tmp_path / "v"
    distinct_videos(folder, 5, seconds=2.0)
    (folder / "notes.mp4").symlink_to(bad_inputs["text"])
    refs = Storage().list_videos(str(folder))
    threads: dict[str, set[str]] = {"sample": set(), "score": set()}
    real_sample, real_score = sampling.SamplingSpec.sample, TechnicalScorer.score

    def sample(self, *args, **kwargs):
        threads["sample"].add(threading.current_thread().name)
        return real_sample(self, *args, **kwargs)

    def score(self, items):
        threads["score"].add(threading.current_thread().name)
        return real_score(self, items)

    monkeypatch.setattr(sampling.SamplingSpec, "sample", sample)
    monkeypatch.setattr(TechnicalScorer, "score", score)
    results = {}
    for workers in (0, 3):
        monkeypatch.setenv("VIDQA_DECODE_WORKERS", str(workers))
        reload_settings()
        threads["sample"].clear(), threads["score"].clear()
        with fresh_database(pg_admin_url) as url:
            upgrade("head", url)
            outcome = run_shard(get_engine(url), refs, SPECS)
            results[workers] = ([(o.uri, o.status) for o in outcome.outcomes], rows(url))
        main = threading.current_thread().name
        assert threads["score"] == {main}
        if workers:
            assert threads["sample"] and all(t.startswith("vidqa-decode") for t in threads["sample"])
        else:
            assert threads["sample"] == {main}
    reload_settings()
    assert results[0] == results[3]
    statuses, (scores, videos) = results[3]
    assert [s for _, s in statuses] == ["failed"] + ["scored"] * 5  # notes.mp4 sorts first
    assert len(scores) > 0 and {v.status for v in videos} == {"ok", "failed"}
