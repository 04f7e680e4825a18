"""The ledger, not Prefect's result cache, is the truth: a cached shard whose rows are gone
from the database (deleted in SQL, or another, fresh database behind the same Prefect home)
is run again and its rows restored; a cached shard whose rows are all there stays cached."""

import sqlalchemy as sa

from conftest import fresh_database
from synthetic import distinct_videos
from test_prefect_ops import flow_task_states, run_flow
from vidqa.db import get_engine, upgrade
from vidqa.scoring.queue import SCORER_CALLS


def score_rows(url):
    with get_engine(url).connect() as conn:
        return conn.execute(sa.text(
            "SELECT v.uri, s.metric, s.value FROM scores s JOIN clips c ON c.id = s.clip_id "
            "JOIN videos v ON v.id = c.video_id ORDER BY 1, 2")).all()


def test_deleted_rows_are_restored_by_a_rerun_whose_shard_was_cached(tmp_path, migrated_db, prefect_api_url):
    from flows.score_videos import ScoreVideosParams, score_videos

    distinct_videos(tmp_path / "videos", 4)
    params = ScoreVideosParams(source=str(tmp_path / "videos"), technical={"sampling": {"n": 2}}, shard_size=2)
    run_flow(score_videos, params)
    stored = score_rows(migrated_db)
    assert len(stored) > 0
    # The same run again: every shard is a cache hit, and nothing is scored.
    before = SCORER_CALLS.copy()
    summary, flow_run_id = run_flow(score_videos, params)
    assert set(flow_task_states(flow_run_id, "score-shard-videos")) == {"Cached"}
    assert SCORER_CALLS == before and summary.n_skipped == 4

    with get_engine(migrated_db).begin() as conn:  # a user deletes scores of one video in SQL
        gone = conn.execute(sa.text(
            "DELETE FROM scores WHERE clip_id IN (SELECT c.id FROM clips c JOIN videos v ON v.id = c.video_id "
            "WHERE v.uri LIKE '%v01.mp4')")).rowcount
    assert gone > 0
    summary, flow_run_id = run_flow(score_videos, params)
    assert score_rows(migrated_db) == stored  # restored, with the same values
    assert SCORER_CALLS["technical"] == before["technical"] + 1  # only the video that lost its rows
    assert summary.n_scored == 1 and summary.n_skipped == 3
    assert summary.n_scores_written == gone


def test_a_second_fresh_database_behind_the_same_prefect_home_gets_its_rows(
    tmp_path, pg_admin_url, monkeypatch, prefect_api_url
):
    from flows.score_videos import ScoreVideosParams, score_videos

    distinct_videos(tmp_path / "videos", 2)
    params = ScoreVideosParams(source=str(tmp_path / "videos"), technical={"sampling": {"n": 2}}, shard_size=2)
    from vidqa.config import reload_settings

    results = []
    try:
        with fresh_database(pg_admin_url) as first, fresh_database(pg_admin_url) as second:
            for url in (first, second):
                upgrade("head", url)
                monkeypatch.setenv("VIDQA_DATABASE_URL", url)
                reload_settings()
                summary, _ = run_flow(score_videos, params)
                results.append((summary.n_scored, len(score_rows(url))))
    finally:
        monkeypatch.undo()
        reload_settings()
    assert results[0] == results[1] and results[0][0] == 2 and results[0][1] > 0
