"""Identities survive the re-layout: a database and a Prefect result cache written by the code
of the previous layout (commit LEGACY_COMMIT, taken from this repository's history and run
as it was, in its own process) are read by the current code, and a rerun computes nothing.

Every scorer is in the job, so every identity is exercised: technical (configuration only),
text_video and emscore (a CLIP config file; EMScore's IDF corpus as run context), aesthetic
(a CLIP plus a head file's SHA-256), video_audio (an audio model folder's weights hash) and
videoscore (a checkpoint folder, its family and frame rule); whole videos and a windows split;
and a file that fails for good.
"""

import json
import os
import subprocess
import sys

import sqlalchemy as sa

from conftest import REPO, SHARED, run_ffmpeg
from test_prefect_ops import flow_task_states, run_flow
from videoscore_fixtures import build_idefics2_checkpoint

# The last commit of the flat layout (vidqa/pipeline.py, vidqa/cli.py, ...).
LEGACY_COMMIT = "a1437e5"
TABLES = ("videos", "clips", "scores", "scorer_failures", "scorer_configs", "score_inputs", "video_splits")


def legacy_tree(dest):
    """The previous layout's code, as committed (needs the repository's history: a clone has it)."""
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", LEGACY_COMMIT, "vidqa", "flows", "tasks",
                              "migrations", "alembic.ini"], capture_output=True, check=False)
    assert archive.returncode == 0, (
        f"commit {LEGACY_COMMIT} is needed from the repository's history: {archive.stderr.decode()}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    assert (dest / "vidqa" / "pipeline.py").is_file()
    return dest


def make_source(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    rows = []
    for i, pattern in enumerate(("testsrc2", "smptebars", "rgbtestsrc")):
        path = folder / f"clip{i}.mp4"
        run_ffmpeg("-f", "lavfi", "-i", f"{pattern}=size=160x120:rate=10:duration=3",
                   "-f", "lavfi", "-i", f"sine=frequency={300 + 100 * i}:sample_rate=16000:duration=3",
                   "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path))
        rows.append({"video_path": str(path), "prompt": f"a {pattern} test pattern",
                     "reference": [f"a test pattern number {i}", "bars of colour"],
                     # no caption on the last row: EMScore's recorded failure is ledger too
                     **({"candidate": f"colour bars {i}"} if i < 2 else {}),
                     **({"audio_text": "a steady tone"} if i == 0 else {})})
    broken = folder / "broken.mp4"
    broken.write_bytes(os.urandom(4096))
    rows.append({"video_path": str(broken), "prompt": "nothing", "candidate": "nothing"})
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


def job_params(manifest, tiny_clip, audio_models, videoscore_folder):
    clip = {"model": tiny_clip[32], "pretrained": None}
    whole = {
        "source": str(manifest), "shard_size": 2,
        "scorers": ["technical", "text_video", "emscore", "aesthetic", "video_audio", "videoscore"],
        "technical": {"sampling": {"n": 3}},
        "text_video": {"clip": clip, "sampling": {"method": "uniform", "n": 2}},
        "emscore": {"clip": clip, "sampling": {"method": "every_n_seconds", "seconds": 1.0}},
        "aesthetic": {"clip": {"model": tiny_clip[768], "pretrained": None},
                      "head": str(SHARED / "models/laion-aesthetic/sa_0_4_vit_l_14_linear.pth")},
        "video_audio": {"clip": clip, "audio": {"model": audio_models["asr"]}},
        "videoscore": {"model": str(videoscore_folder), "max_frames": 4},
    }
    windows = {"source": str(manifest), "shard_size": 2, "scorers": ["technical"],
               "technical": {"sampling": {"n": 2}}, "clips": {"method": "windows", "window_s": 1.0, "min_s": 0.5}}
    return [whole, windows]


LEGACY_RUN = """
import json, sys
from flows.score_videos import ScoreVideosParams, score_videos
import vidqa.pipeline  # the previous layout, not the current one
for params in json.loads(sys.argv[1]):
    summary = score_videos(ScoreVideosParams.model_validate(params))
    print("SUMMARY", json.dumps(summary))
"""


def table_rows(url):
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        counts = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}
        hashes = set(conn.execute(sa.text("SELECT config_hash FROM scorer_configs")).scalars())
        runs = conn.execute(sa.text("SELECT count(*) FROM runs")).scalar_one()
    engine.dispose()
    return counts, hashes, runs


def test_a_database_and_result_cache_of_the_previous_layout_need_no_recomputation(
    tmp_path, database_url, prefect_api_url, tiny_clip, audio_models
):
    from prefect.settings import get_current_settings

    from flows.score_videos import ScoreVideosParams, score_videos
    from vidqa.scoring.queue import SCORER_CALLS

    legacy = legacy_tree(tmp_path / "legacy")
    manifest = make_source(tmp_path)
    build_idefics2_checkpoint(tmp_path / "videoscore")
    jobs = job_params(manifest, tiny_clip, audio_models, tmp_path / "videoscore")

    storage = str(get_current_settings().results.local_storage_path)
    # An empty database: the previous layout migrates it to its own head (0006); the current
    # code upgrades it (ensure_schema) as it would a user's database.
    migrated_db = database_url
    env = {**os.environ, "PYTHONPATH": str(legacy), "VIDQA_DATABASE_URL": migrated_db,
           "PREFECT_API_URL": prefect_api_url, "PREFECT_LOCAL_STORAGE_PATH": storage}
    proc = subprocess.run([sys.executable, "-c", LEGACY_RUN, json.dumps(jobs)], cwd=legacy, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    old = [json.loads(line[len("SUMMARY "):]) for line in proc.stdout.splitlines() if line.startswith("SUMMARY ")]
    assert [(s["n_videos"], s["n_scored"], s["n_failed"]) for s in old] == [(4, 3, 1), (4, 3, 1)]
    written, hashes, _ = table_rows(migrated_db)
    with sa.create_engine(migrated_db).connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == "0006"
    assert written["scores"] > 0 and written["scorer_failures"] > 0 and len(hashes) == 7  # 6 scorers + windows' technical

    # The current code, same database, same result storage: every shard is a cache hit. EMScore
    # names the previous layout's idf rule explicitly (`idf_corpus: distinct`, whose hash is the
    # old one); its new default, the reference code's rule, is another identity (checked below).
    jobs = [{**p, "emscore": {**p["emscore"], "idf_corpus": "distinct"}} if "emscore" in p else p for p in jobs]
    before = SCORER_CALLS.copy()
    for params in jobs:
        summary, flow_run_id = run_flow(score_videos, ScoreVideosParams.model_validate(params))
        assert (summary.n_videos, summary.n_skipped, summary.n_failed, summary.n_scores_written) == (4, 3, 1, 0)
        states = flow_task_states(flow_run_id, "score-shard")
        assert states and set(states) == {"Cached"}, states
    assert SCORER_CALLS == before

    # Without the cache (other shards, so other cache keys), the ledger alone finds every
    # score under the same configuration hashes: nothing is decoded or scored.
    for params in jobs:
        summary, flow_run_id = run_flow(score_videos, ScoreVideosParams.model_validate({**params, "shard_size": 1}))
        assert (summary.n_videos, summary.n_skipped, summary.n_failed, summary.n_scores_written) == (4, 3, 1, 0)
        assert set(flow_task_states(flow_run_id, "score-shard")) == {"Completed"}
    assert SCORER_CALLS == before
    from vidqa.db.migrate import current_revision, head_revision

    assert current_revision(migrated_db) == head_revision() != "0006"  # upgraded by the current code
    again, hashes_again, runs = table_rows(migrated_db)
    assert again == written and hashes_again == hashes  # not one row added, not one identity new
    assert runs == 2 + 4
    from vidqa.scoring.shard import prepare_scorers
    from vidqa.storage import Storage

    refs = Storage().list_videos(str(manifest))
    default = ScoreVideosParams.model_validate({**jobs[0], "emscore": {k: v for k, v in jobs[0]["emscore"].items()
                                                                       if k != "idf_corpus"}})
    [emscore_default] = [s for s in prepare_scorers(default.scorer_specs(), refs) if s.name == "emscore"]
    assert emscore_default.config_hash not in hashes  # old-rule scores are not reused for the new rule
