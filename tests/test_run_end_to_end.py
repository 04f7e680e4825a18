"""`vidqa run` as a user runs it: real CLI, real Postgres, Prefect, ffmpeg, the shared videos."""

import csv
import io
import json
import os
import signal
import subprocess
import time

import pytest
import sqlalchemy as sa

from conftest import SAMPLE_VIDEOS, VIDEOS, vidqa_cli
from vidqa.db import get_engine
from vidqa.video.probe import probe_video
from vidqa.scorers.technical import TechnicalScorer

N_METRICS = len(TechnicalScorer.metrics)


@pytest.fixture
def cli_env(migrated_db, prefect_api_url):
    return {"VIDQA_DATABASE_URL": migrated_db, "PREFECT_API_URL": prefect_api_url}


def table_counts(url):
    with get_engine(url).connect() as conn:
        return {
            t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()
            for t in ("videos", "clips", "scores", "scorer_configs", "runs")
        }


def test_run_scores_good_videos_and_records_bad_ones(video_dir, cli_env, migrated_db):
    proc = vidqa_cli("run", str(video_dir), "--frames", "6", env=cli_env)
    out = proc.stdout
    n_good = len(SAMPLE_VIDEOS)
    assert "videos found" in out and "failures" in out

    videos = json.loads(vidqa_cli("videos", "--format", "json", env=cli_env).stdout)
    by_name = {os.path.basename(v["uri"]): v for v in videos}
    assert len(videos) == n_good + 3
    assert by_name["empty.mp4"]["status"] == "failed"
    assert by_name["empty.mp4"]["failure_reason"] == "empty file (0 bytes)"
    assert by_name["notes.mp4"]["failure_reason"].startswith("not a readable video")
    assert by_name["audio_only.mp4"]["failure_reason"] == "no video stream (streams: audio:aac)"
    # corrupted.mp4 is scored from its decodable frames: one bad frame must not lose a video.
    assert by_name["corrupted.mp4"]["status"] == "ok"

    # Probe metadata agrees with ffprobe on every good video.
    for src in SAMPLE_VIDEOS:
        row = by_name[src.name]
        assert row["status"] == "ok", (src.name, row["failure_reason"])
        counted = subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
             "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(src)],
            capture_output=True, text=True, check=True,
        ).stdout.strip().rstrip(",")
        assert row["frame_count"] == int(counted), src.name

    records = json.loads(vidqa_cli("scores", "--format", "json", env=cli_env).stdout)
    assert len(records) == n_good * N_METRICS
    assert {"video", "clip", "scorer", "metric", "value"} <= set(records[0])
    assert records[0]["clip"] == "video:0-" + str(by_name[os.path.basename(records[0]["video"])]["frame_count"])
    corrupted = [r for r in records if r["video"].endswith("corrupted.mp4")]
    assert {r["metric"] for r in corrupted} == set(TechnicalScorer.metrics)
    with get_engine(migrated_db).connect() as conn:
        details = conn.execute(sa.text(
            "SELECT s.details FROM scores s JOIN clips c ON c.id = s.clip_id JOIN videos v ON v.id = c.video_id "
            "WHERE v.uri LIKE '%corrupted.mp4' AND s.metric = 'sharpness'")).scalar()
        # uniform(6) over 5 s asks for t = 0..5 s, i.e. frame 30: the corrupt one, skipped and reported.
        assert details["requested"] == 6 and details["frames"] == 5
        assert details["skipped_corrupt"] == [30]
        run = conn.execute(sa.text("SELECT * FROM runs")).mappings().one()
    assert run["status"] == "completed"
    assert (run["n_videos"], run["n_scored"], run["n_failed"]) == (n_good + 3, n_good, 3)
    assert run["flow_run_id"] is not None
    assert run["parameters"]["technical"]["sampling"]["n"] == 6

    rows = list(csv.DictReader(io.StringIO(vidqa_cli("scores", "--format", "csv", env=cli_env).stdout)))
    assert len(rows) == len(records)
    assert "luminance_mean" in vidqa_cli("scores", "--format", "table", "-m", "luminance_mean", env=cli_env).stdout


def test_rerun_computes_nothing_and_duplicates_nothing(video_dir, cli_env, migrated_db):
    vidqa_cli("run", str(video_dir), "--frames", "4", env=cli_env)
    before = table_counts(migrated_db)
    with get_engine(migrated_db).connect() as conn:
        first_scores = conn.execute(sa.text("SELECT id, created_at, run_id FROM scores ORDER BY id")).all()
    second = vidqa_cli("run", str(video_dir), "--frames", "4", env=cli_env)
    after = table_counts(migrated_db)
    assert after["scores"] == before["scores"] and after["videos"] == before["videos"]
    assert after["clips"] == before["clips"]
    assert after["runs"] == before["runs"] + 1
    with get_engine(migrated_db).connect() as conn:
        assert conn.execute(sa.text("SELECT id, created_at, run_id FROM scores ORDER BY id")).all() == first_scores
        last = conn.execute(sa.text("SELECT * FROM runs ORDER BY started_at DESC LIMIT 1")).mappings().one()
    assert last["n_scored"] == 0 and last["n_scores_written"] == 0
    assert last["n_skipped"] == len(SAMPLE_VIDEOS)
    assert "already scored (skipped)" in second.stdout

    # A changed scorer setting is new work: a second configuration is stored beside the first.
    vidqa_cli("run", str(video_dir), "--frames", "5", env=cli_env)
    changed = table_counts(migrated_db)
    assert changed["scorer_configs"] == 2
    assert changed["scores"] == 2 * before["scores"]


def test_exit_code_nonzero_only_when_nothing_could_be_scored(tmp_path, bad_inputs, cli_env):
    d = tmp_path / "only-bad"
    d.mkdir()
    for p in bad_inputs.values():
        (d / p.name).symlink_to(p)
    proc = vidqa_cli("run", str(d), env=cli_env, check=False)
    assert proc.returncode == 1
    assert "empty file (0 bytes)" in proc.stdout
    missing = vidqa_cli("run", str(tmp_path / "nope"), env=cli_env, check=False)
    assert missing.returncode == 2 and "source not found" in missing.stderr


def test_killed_run_is_finished_by_a_rerun(tmp_path, cli_env, migrated_db):
    d = tmp_path / "many"
    d.mkdir()
    for src in SAMPLE_VIDEOS:
        (d / src.name).symlink_to(src)
    proc = subprocess.Popen(
        ["vidqa", "run", str(d), "--frames", "16", "--shard-size", "1"],
        env={**os.environ, **cli_env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    engine = get_engine(migrated_db)
    deadline = time.time() + 120
    scored = 0
    while time.time() < deadline and proc.poll() is None:
        with engine.connect() as conn:
            scored = conn.execute(sa.text("SELECT count(DISTINCT clip_id) FROM scores")).scalar()
        if scored >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 1 <= scored < len(SAMPLE_VIDEOS), "kill landed outside the run; the test proves nothing"

    vidqa_cli("run", str(d), "--frames", "16", env=cli_env)
    with engine.connect() as conn:
        per_clip = conn.execute(sa.text("SELECT clip_id, count(*) FROM scores GROUP BY clip_id")).all()
        n_videos = conn.execute(sa.text("SELECT count(*) FROM videos WHERE status = 'ok'")).scalar()
        last = conn.execute(sa.text("SELECT * FROM runs ORDER BY started_at DESC LIMIT 1")).mappings().one()
    assert n_videos == len(SAMPLE_VIDEOS)
    assert len(per_clip) == len(SAMPLE_VIDEOS)
    assert all(n == N_METRICS for _, n in per_clip)
    assert last["n_skipped"] >= 1 and last["n_scored"] == len(SAMPLE_VIDEOS) - last["n_skipped"]


def test_zero_configuration_uses_embedded_postgres(tmp_path, prefect_api_url):
    """No database URL at all: vidqa starts its own Postgres under VIDQA_HOME."""
    env = {"VIDQA_DATABASE_URL": ""}
    env.update({"VIDQA_HOME": str(tmp_path / "home"), "PREFECT_API_URL": prefect_api_url})
    d = tmp_path / "one"
    d.mkdir()
    (d / "video_90.mov").symlink_to([p for p in SAMPLE_VIDEOS if p.name == "video_90.mov"][0])
    vidqa_cli("run", str(d), env=env)
    assert (tmp_path / "home" / "pgdata" / "PG_VERSION").exists()
    url = vidqa_cli("db", "url", env=env).stdout
    assert str(tmp_path / "home" / "pgdata").replace("/", "%2F") in url
    records = json.loads(vidqa_cli("scores", "--format", "json", env=env).stdout)
    assert len(records) == N_METRICS
    probe = probe_video(str(d / "video_90.mov"))
    assert probe.frame_count == 3


def test_scores_name_the_configuration_of_each_value(cli_env, migrated_db):
    """Two configurations of one scorer on one video: `vidqa scores` tells them apart in every
    format, takes comma lists and --limit, and refuses an unknown metric."""
    video = str(VIDEOS / "counter.mp4")
    vidqa_cli("run", video, "--frames", "4", env=cli_env)
    vidqa_cli("run", video, "--sampling", "every_n_frames:5", env=cli_env)
    records = json.loads(vidqa_cli("scores", "-f", "json", "-m", "sharpness,ssim_sim", env=cli_env).stdout)
    assert {r["metric"] for r in records} == {"sharpness", "ssim_sim"} and len(records) == 4
    with get_engine(migrated_db).connect() as conn:
        hashes = dict(conn.execute(sa.text(
            "SELECT config->'config'->'sampling'->>'method', config_hash FROM scorer_configs")).all())
    by_config = {r["config_hash"]: r["config"] for r in records}
    assert by_config == {hashes["uniform"]: f"technical v1 uniform:4 ({hashes['uniform'][:8]})",
                         hashes["every_n_frames"]: f"technical v1 every_n_frames:5 ({hashes['every_n_frames'][:8]})"}
    rows = list(csv.DictReader(io.StringIO(vidqa_cli("scores", "-f", "csv", "-m", "sharpness", env=cli_env).stdout)))
    assert {r["config"] for r in rows} == set(by_config.values()) and "config_hash" in rows[0]
    table = vidqa_cli("scores", "-m", "sharpness", env=cli_env).stdout
    assert "uniform:4" in table and "every_n_frames:5" in table
    assert len(json.loads(vidqa_cli("scores", "-f", "json", "--limit", "3", env=cli_env).stdout)) == 3
    bad = vidqa_cli("scores", "-m", "sharpnes", env=cli_env, check=False)
    assert bad.returncode == 2 and "unknown metric 'sharpnes'" in bad.stderr and "sharpness" in bad.stderr
