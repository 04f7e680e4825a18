"""Runs close: a run whose flow fails is closed `failed` with the error by the flow's state
hook; a run whose process is SIGKILLed stops beating and the next run closes it `crashed`;
a run whose Prefect flow run already ended is closed by the next run (real Postgres, the
real CLI in subprocesses, Prefect's test harness)."""

import os
import socket
import shutil
import signal
import subprocess
import time

import sqlalchemy as sa

from conftest import REPO, VIDEOS, run_ffmpeg, vidqa_cli


def run_rows(url):
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM runs ORDER BY started_at")).mappings().all()
    engine.dispose()
    return [dict(r) for r in rows]


def test_a_run_that_fails_before_listing_is_closed_failed_with_its_error(migrated_db, tmp_path):
    missing = tmp_path / "no-such-folder"
    proc = vidqa_cli("run", str(missing), check=False)
    assert proc.returncode == 2 and "not found" in (proc.stdout + proc.stderr).lower()
    [run] = run_rows(migrated_db)
    assert run["status"] == "failed" and run["finished_at"] is not None
    assert str(missing) in run["error"] and run["error"].startswith("Failed")


def test_a_killed_run_is_closed_crashed_by_the_next_run(migrated_db, tmp_path):
    source = tmp_path / "videos"
    source.mkdir()
    for i in range(6):
        run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=8", "-c:v", "libx264",
                   "-pix_fmt", "yuv420p", str(source / f"v{i}.mp4"))
    env = {**os.environ, "VIDQA_DATABASE_URL": migrated_db, "VIDQA_RUN_HEARTBEAT_S": "1"}
    victim = subprocess.Popen([shutil.which("vidqa"), "run", str(source), "--frames", "200", "--shard-size", "1"],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = run_rows(migrated_db)
            if rows and rows[0]["heartbeat_at"] is not None:
                break
            time.sleep(0.5)
        assert rows and rows[0]["status"] == "running" and rows[0]["heartbeat_at"] is not None
    finally:
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
    [killed] = run_rows(migrated_db)
    assert killed["status"] == "running"  # nothing could close it at the time
    vidqa_cli("run", str(VIDEOS / "video_90.mov"), "--frames", "2",
              env={"VIDQA_DATABASE_URL": migrated_db, "VIDQA_RUN_HEARTBEAT_S": "1"})
    first, second = run_rows(migrated_db)
    assert first["id"] == killed["id"] and first["status"] == "crashed"
    # On the same host its process is asked for, not waited out for 4 heartbeats.
    assert first["error"] == f"its process (pid {victim.pid} on {socket.gethostname()}) is gone"
    assert first["finished_at"] is not None
    assert second["status"] == "completed" and second["error"] is None


def test_a_silent_run_on_another_host_is_closed_when_its_heartbeat_goes_stale(migrated_db, monkeypatch):
    """A process elsewhere cannot be asked: 4 heartbeat intervals of silence close its run."""
    from datetime import timedelta

    from vidqa.config import reload_settings
    from vidqa.db import get_engine, repository as repo
    from vidqa.scoring.runs import close_dead_runs

    engine = get_engine(migrated_db)
    quiet = repo.create_run(engine, "/data", {}, "test", host="another-host", pid=os.getpid())
    fresh = repo.create_run(engine, "/data", {}, "test", host="another-host", pid=os.getpid())
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE runs SET heartbeat_at = now() - :age WHERE id = :id"),
                     {"age": timedelta(seconds=5), "id": quiet})
        conn.execute(sa.text("UPDATE runs SET heartbeat_at = now() WHERE id = :id"), {"id": fresh})
    monkeypatch.setenv("VIDQA_RUN_HEARTBEAT_S", "1")
    reload_settings()
    try:
        assert close_dead_runs({}) == [str(quiet)]
    finally:
        monkeypatch.delenv("VIDQA_RUN_HEARTBEAT_S")
        reload_settings()
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT id, status FROM runs WHERE id IN (:a, :b)"),
                                 {"a": quiet, "b": fresh}).all())
        error = conn.execute(sa.text("SELECT error FROM runs WHERE id = :a"), {"a": quiet}).scalar_one()
    assert rows == {quiet: "crashed", fresh: "running"} and error.startswith("no heartbeat since")


def test_a_run_whose_flow_run_ended_is_closed_by_the_next_run(migrated_db, prefect_api_url):
    from prefect import flow

    from flows.score_videos import ScoreVideosParams, score_videos
    from vidqa.db import get_engine
    from vidqa.db import repository as repo

    @flow(name="vidqa-test-ends-without-closing")
    def ends_without_closing() -> str:
        from prefect.runtime import flow_run

        return flow_run.id

    ended = ends_without_closing()
    orphan = repo.create_run(get_engine(migrated_db), "elsewhere", {}, "test", ended, "score-videos")
    assert [r["status"] for r in run_rows(migrated_db)] == ["running"]
    score_videos(ScoreVideosParams(source=str(VIDEOS / "video_90.mov"), technical={"sampling": {"n": 2}}))
    rows = {r["id"]: r for r in run_rows(migrated_db)}
    assert rows[orphan]["status"] == "crashed"
    assert rows[orphan]["error"] == "its flow run ended Completed without closing the run"
    assert [r["status"] for k, r in rows.items() if k != orphan] == ["completed"]
