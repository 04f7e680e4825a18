"""A database that goes away mid-run: gone for good, the run stops within seconds with one
line and keeps what it wrote (the rerun finishes the rest, with no duplicate); back after 5 s,
the run recovers and its summary counts what the database holds. The database is made
unreachable for real: it refuses connections (ALLOW_CONNECTIONS false, superusers included)
and its sessions are terminated, on the real server."""

import os
import re
import shutil
import subprocess
import time

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from conftest import REPO, vidqa_cli
from synthetic import distinct_videos

N_VIDEOS = 12
N_METRICS = 7  # technical


def start_run(source, url, prefect_api_url):
    env = {**os.environ, "VIDQA_DATABASE_URL": url, "PREFECT_API_URL": prefect_api_url}
    env.pop("PREFECT_LOGGING_LEVEL", None)  # as a user runs it: vidqa's own quiet default
    return subprocess.Popen([shutil.which("vidqa"), "run", str(source), "--sampling", "all", "--shard-size", "1"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_scores(url, proc):
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        with engine.connect() as conn:
            if conn.execute(sa.text("SELECT count(*) FROM scores")).scalar_one() > 0:
                return
        time.sleep(0.2)
    raise AssertionError("the run wrote no score (or ended) before the database could be taken away")


def take_away(admin_url, url):
    name = make_url(url).database
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})


def bring_back(admin_url, url):
    name = make_url(url).database
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))


def stored(url, sql):
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        return conn.execute(sa.text(sql)).scalar_one()


def test_a_lost_database_stops_the_run_in_seconds_with_one_line(tmp_path, migrated_db, pg_admin_url, prefect_api_url):
    distinct_videos(tmp_path / "v", N_VIDEOS, seconds=6.0)
    proc = start_run(tmp_path / "v", migrated_db, prefect_api_url)
    try:
        wait_for_scores(migrated_db, proc)
        take_away(pg_admin_url, migrated_db)
        lost_at = time.monotonic()
        out, err = proc.communicate(timeout=300)
        stopped_after = time.monotonic() - lost_at
    finally:
        proc.kill()
        bring_back(pg_admin_url, migrated_db)
    assert proc.returncode == 2, (out, err)
    assert stopped_after < 45, stopped_after  # 10 s of grace, not minutes of retries
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err + out, err
    assert err.startswith("error: the database stopped answering") and "rerun the same command" in err, err
    kept = stored(migrated_db, "SELECT count(*) FROM scores")
    assert 0 < kept < N_VIDEOS * N_METRICS

    # The rerun finishes the rest: every score once.
    rerun = vidqa_cli("run", str(tmp_path / "v"), "--sampling", "all", "--shard-size", "1",
                      env={"VIDQA_DATABASE_URL": migrated_db, "PREFECT_API_URL": prefect_api_url})
    assert stored(migrated_db, "SELECT count(*) FROM scores") == N_VIDEOS * N_METRICS, rerun.stdout
    assert stored(migrated_db, "SELECT count(DISTINCT (clip_id, metric, config_hash)) FROM scores") == \
        N_VIDEOS * N_METRICS


def test_a_database_back_after_5_s_is_recovered_and_the_summary_counts_what_it_holds(
        tmp_path, migrated_db, pg_admin_url, prefect_api_url):
    distinct_videos(tmp_path / "v", N_VIDEOS, seconds=6.0)
    proc = start_run(tmp_path / "v", migrated_db, prefect_api_url)
    try:
        wait_for_scores(migrated_db, proc)
        take_away(pg_admin_url, migrated_db)
        time.sleep(5)
    finally:
        bring_back(pg_admin_url, migrated_db)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, (out, err)
    assert stored(migrated_db, "SELECT count(*) FROM scores") == N_VIDEOS * N_METRICS
    written = int(re.search(r"scores written\s*\S\s*(\d+)", out).group(1))
    scored = int(re.search(r"scored now\s*\S\s*(\d+)", out).group(1))
    assert (written, scored) == (N_VIDEOS * N_METRICS, N_VIDEOS), out  # all of it is this run's work
    assert stored(migrated_db, "SELECT n_scores_written FROM runs") == written


def test_the_summary_counts_the_scores_a_failed_attempt_wrote(tmp_path, migrated_db):
    """A shard attempt that wrote its scores and then lost its connection is retried; the retry
    finds them in the ledger (skipped, 0 written), and the summary still counts them."""
    from conftest import run_shard
    from vidqa import __version__
    from vidqa.db import get_engine, repository as repo
    from vidqa.scoring.job import ScorerSpec
    from vidqa.scoring.outcomes import RunSummary
    from vidqa.scoring.runs import close_run
    from vidqa.storage import Storage

    distinct_videos(tmp_path / "v", 3, seconds=2.0)
    engine = get_engine(migrated_db)
    run_id = repo.create_run(engine, str(tmp_path / "v"), {}, __version__)
    refs = Storage().list_videos(str(tmp_path / "v"))
    technical = [ScorerSpec("technical", {"sampling": {"n": 2}})]
    run_shard(engine, refs[:2], technical, run_id=run_id)  # the attempt that wrote, then "failed"
    retry = run_shard(engine, refs, technical, run_id=run_id)  # what the run hears of
    told = RunSummary.from_outcomes(str(run_id), str(tmp_path / "v"), retry.outcomes, [], 1.0)
    assert (told.n_scored, told.n_skipped, told.n_scores_written) == (1, 2, N_METRICS)
    summary = close_run(told)
    assert (summary.n_scored, summary.n_skipped, summary.n_scores_written) == (3, 0, 3 * N_METRICS)
    assert stored(migrated_db, "SELECT n_scores_written FROM runs") == 3 * N_METRICS
