"""Scale past one machine: `score-videos` fans its shards out as `score-shard` flow runs onto a
process work pool served by two real `prefect worker start` processes, against a REAL local
Prefect server and a real Postgres. Shown here: both workers take shards (the server's own
worker events say which ran which); two overlapping runs of one source leave exactly one
score per video and metric; a worker killed mid-shard (with its flow-run process, as when a
machine dies) gets its run marked Crashed by the heartbeat automation of
deployments/automations.yaml, the parent resubmits the shard, and every video ends scored
exactly once. And the in-flow Dask task runner on a local Dask cluster gives the very scores
of the thread runner.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from conftest import fresh_database
from prefect_server import REPO, Workers, parent_summary, prefect_server, start_parent, video_set  # noqa: F401 (fixture)

TECHNICAL_METRICS = {"luminance_mean", "luminance_min", "luminance_max", "sharpness", "mse_dyn", "ssim_dyn", "ssim_sim"}
@pytest.fixture(scope="module")
def shard_pool(prefect_server):
    """The pool, the zombie automation and the score-shard deployment, created as documented."""
    srv = prefect_server
    srv.cli("work-pool", "create", "vidqa", "--type", "process")
    srv.cli("automation", "create", "--from-file", "deployments/automations.yaml")
    srv.cli("--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--name", "score-shard",
            env=srv.client_env(VIDQA_PROJECT_DIR=str(REPO)))
    dep = srv.get("/deployments/name/score-shard/score-shard")
    assert dep["work_pool_name"] == "vidqa"
    assert dep["job_variables"]["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"
    return srv


@pytest.fixture
def workers(shard_pool, migrated_db, tmp_path):
    w = Workers(shard_pool, migrated_db, tmp_path)
    try:
        yield w
    finally:
        w.stop()


def shard_runs(srv, run_id: str) -> list[dict]:
    return srv.post("/flow_runs/filter", {"flow_runs": {"tags": {"all_": [f"vidqa-run-{run_id}"]}}, "limit": 200})


def worker_of_runs(srv, since: datetime) -> dict[str, str]:
    """flow run id -> name of the worker that submitted it, from the server's worker events."""
    until = datetime.now(timezone.utc) + timedelta(minutes=1)
    body = {"filter": {"event": {"name": ["prefect.worker.submitted-flow-run"]},
                       "occurred": {"since": since.isoformat(), "until": until.isoformat()}}, "limit": 50}
    deadline, page = time.monotonic() + 20, {}
    while time.monotonic() < deadline:  # events reach the store a moment after they are emitted
        page = srv.post("/events/filter", body)
        if page["events"]:
            break
        time.sleep(1)
    events = page.get("events", [])
    while page.get("next_page"):
        page = srv.http.get(page["next_page"]).json()
        events += page["events"]
    out = {}
    for ev in events:
        worker = ev["resource"]["prefect.resource.name"]
        for rel in ev["related"]:
            if rel["prefect.resource.role"] == "flow-run":
                out[rel["prefect.resource.id"].rsplit(".", 1)[1]] = worker
    return out


def query(db_url: str, sql: str, **params) -> list[dict]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]
    finally:
        engine.dispose()


def scores_per_video_metric(db_url: str) -> dict[tuple[str, str], int]:
    rows = query(db_url, "SELECT v.uri, s.metric, count(*) AS n FROM scores s JOIN clips c ON c.id = s.clip_id "
                         "JOIN videos v ON v.id = c.video_id GROUP BY v.uri, s.metric")
    return {(os.path.basename(r["uri"]), r["metric"]): r["n"] for r in rows}


def run_shard_rows(db_url: str, run_id: str) -> list[dict]:
    return query(db_url, "SELECT * FROM run_shards WHERE run_id = :r ORDER BY shard_index", r=run_id)


def assert_each_video_scored_once(db_url: str, source, summaries: list[dict]) -> None:
    """Every run saw every video without a failure, and each (video, metric) has one score."""
    names = {p.name for p in source.iterdir()}
    for summary in summaries:
        assert summary["n_videos"] == len(names) and summary["n_failed"] == 0, summary
        assert summary["n_scored"] + summary["n_skipped"] == len(names), summary
    counts = scores_per_video_metric(db_url)
    assert {name for name, _ in counts} == names
    assert {metric for _, metric in counts} == TECHNICAL_METRICS
    assert set(counts.values()) == {1}, {k: v for k, v in counts.items() if v != 1}
    assert len(counts) == len(names) * len(TECHNICAL_METRICS)


def test_both_workers_take_shards_and_overlapping_runs_write_each_score_once(shard_pool, workers, migrated_db, tmp_path):
    srv = shard_pool
    source = video_set(tmp_path / "videos", 12)
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    workers.start("worker-a", limit=2)
    workers.start("worker-b", limit=2)
    params = {"source": str(source), "scorers": ["technical"], "technical": {"sampling": {"n": 4}},
              "shard_size": 3, "fan_out": {"enabled": True, "max_in_flight": 4, "poll_seconds": 0.5}}
    # Two runs of the same source at once: their shards race on the same videos.
    first, second = start_parent(workers, params), start_parent(workers, params)
    summaries = [parent_summary(first, workers, 420), parent_summary(second, workers, 420)]

    # Every video scored (by one run or the other), and each score stored exactly once.
    assert len(list(source.iterdir())) == 12
    assert_each_video_scored_once(migrated_db, source, summaries)
    names = {p.name for p in source.iterdir()}

    ran_by = worker_of_runs(srv, since)
    for summary in summaries:
        runs = shard_runs(srv, summary["run_id"])
        states = [(r["name"], r["state_name"], r["state"]["message"]) for r in runs]
        assert len(runs) == 4 and {r["state_type"] for r in runs} == {"COMPLETED"}, states
        assert all(r["parent_task_run_id"] for r in runs)  # linked as subflows of the parent run
        rows = run_shard_rows(migrated_db, summary["run_id"])
        assert [r["shard_index"] for r in rows] == [0, 1, 2, 3]
        assert all(r["status"] == "completed" and r["attempts"] == 1 and len(r["outcomes"]) == 3 for r in rows)
        assert {str(r["flow_run_id"]) for r in rows} == {r["id"] for r in runs}
        assert sorted(o["uri"] for r in rows for o in r["outcomes"]) == sorted(str(source / n) for n in names)
    # The automation touches vidqa's tagged runs only: these parents, started from the command
    # line with Prefect's default 180 s heartbeat, are not taken for dead.
    parents = [str(r["flow_run_id"]) for r in query(migrated_db, "SELECT flow_run_id FROM runs")]
    assert [srv.get(f"/flow_runs/{p}")["state_type"] for p in parents] == ["COMPLETED", "COMPLETED"]
    takers = {ran_by[r["id"]] for s in summaries for r in shard_runs(srv, s["run_id"])}
    assert takers == {"worker-a", "worker-b"}, ran_by


def test_killed_worker_shard_is_resubmitted_and_every_video_scored_once(shard_pool, workers, migrated_db, tmp_path):
    srv = shard_pool
    source = video_set(tmp_path / "videos", 16)
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    workers.start("worker-a", limit=1)
    workers.start("worker-b", limit=1)
    # Enough frames that a shard is still scoring when its worker dies.
    params = {"source": str(source), "scorers": ["technical"], "technical": {"sampling": {"n": 48}},
              "shard_size": 4, "fan_out": {"enabled": True, "max_in_flight": 4, "poll_seconds": 0.5,
                                           "shard_retries": 2}}
    parent = start_parent(workers, params)

    # Kill worker-b (and its flow-run process) while one of its shard runs is Running.
    victim_run, deadline = None, time.monotonic() + 240
    while victim_run is None and time.monotonic() < deadline and parent.poll() is None:
        running = srv.post("/flow_runs/filter", {"flow_runs": {"tags": {"all_": ["vidqa-shard"]},
                                                                "state": {"type": {"any_": ["RUNNING"]}}}})
        if running:
            ran_by = worker_of_runs(srv, since)
            victim_run = next((r for r in running if ran_by.get(r["id"]) == "worker-b"), None)
        if victim_run is None:
            time.sleep(0.3)
    assert victim_run is not None, f"worker-b never ran a shard\n{workers.logs()}"
    killed = workers.kill("worker-b")
    assert len(killed) >= 2  # the worker and the flow-run process it started

    summary = parent_summary(parent, workers, 300)
    assert len(list(source.iterdir())) == 16
    assert_each_video_scored_once(migrated_db, source, [summary])

    # The killed run was marked Crashed by the heartbeat automation, not left Running.
    victim = srv.get(f"/flow_runs/{victim_run['id']}")
    assert victim["state_type"] == "CRASHED", victim["state"]
    assert "heartbeat" in (victim["state"]["message"] or ""), victim["state"]
    rows = run_shard_rows(migrated_db, summary["run_id"])
    assert [r["status"] for r in rows] == ["completed"] * 4
    [resubmitted] = [r for r in rows if r["attempts"] > 1]
    assert resubmitted["attempts"] == 2
    runs = shard_runs(srv, summary["run_id"])
    assert len(runs) == 5  # four shards, one of them twice
    assert str(resubmitted["flow_run_id"]) != victim_run["id"]
    assert worker_of_runs(srv, since)[str(resubmitted["flow_run_id"])] == "worker-a"
    assert victim_run["id"] in {r["id"] for r in runs}


@pytest.fixture
def second_db(pg_admin_url):
    """A second fresh, migrated database on the same server."""
    from vidqa.db import upgrade

    with fresh_database(pg_admin_url) as url:
        upgrade("head", url)
        yield url


def _score_values(db_url: str) -> dict[tuple[str, str], float]:
    rows = query(db_url, "SELECT v.uri, s.metric, s.value FROM scores s JOIN clips c ON c.id = s.clip_id "
                         "JOIN videos v ON v.id = c.video_id")
    return {(os.path.basename(r["uri"]), r["metric"]): r["value"] for r in rows}


def test_dask_task_runner_gives_the_thread_runners_scores(migrated_db, second_db, prefect_api_url,
                                                         tmp_path, monkeypatch):
    from distributed import Client, LocalCluster

    from flows.runners import gpu_request, task_runner
    from flows.score_videos import ScoreVideosParams, score_videos
    from vidqa.config import Settings, reload_settings
    from vidqa.scoring.queue import SCORER_CALLS

    # The runner follows configuration: VIDQA_TASK_RUNNER=dask in a worker's environment.
    probe = subprocess.run(
        [sys.executable, "-c", "from flows.score_videos import score_videos; print(type(score_videos.task_runner).__name__)"],
        cwd=REPO, env={**os.environ, "VIDQA_TASK_RUNNER": "dask"}, capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == "DaskTaskRunner", probe.stderr[-3000:]
    assert type(task_runner(Settings(task_runner_workers=3))).__name__ == "ThreadPoolTaskRunner"
    assert task_runner(Settings(task_runner_workers=3))._max_workers == 3  # bounded

    # GPU shards request the workers' declared GPU resource on an existing cluster only.
    import dask

    on_cluster = Settings(task_runner="dask", dask_address="tcp://127.0.0.1:8786", dask_gpu_resource="GPU")
    with gpu_request(1.0, on_cluster):
        assert dask.get_annotations() == {"resources": {"GPU": 1.0}}
    with gpu_request(0.0, on_cluster):
        assert "resources" not in dask.get_annotations()
    with gpu_request(1.0, Settings(task_runner="thread")):
        assert "resources" not in dask.get_annotations()

    source = video_set(tmp_path / "videos", 6)
    params = ScoreVideosParams(source=str(source), scorers=["technical"], technical={"sampling": {"n": 6}}, shard_size=2)
    threaded = score_videos.with_options(task_runner=task_runner(Settings(task_runner="thread")))(params)
    assert threaded.n_scored == 6
    expected = _score_values(migrated_db)
    assert len(expected) == 6 * len(TECHNICAL_METRICS)

    # The same job in a fresh database, its shards on a local Dask cluster of two worker processes.
    second = second_db
    monkeypatch.setenv("VIDQA_DATABASE_URL", second)
    reload_settings()
    in_process = SCORER_CALLS.copy()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        on_dask = Settings(task_runner="dask", dask_address=cluster.scheduler_address)
        summary = score_videos.with_options(task_runner=task_runner(on_dask))(params)
        calls = client.run(lambda: dict(__import__("vidqa.scoring.queue").scoring.queue.SCORER_CALLS))
    assert summary.n_scored == 6 and summary.n_failed == 0, summary
    assert SCORER_CALLS == in_process  # nothing was scored in this process ...
    assert sum(c.get("technical", 0) for c in calls.values()) == 6  # ... the Dask workers scored all six
    assert _score_values(second) == expected  # identical values, not merely close


def test_kubernetes_example_is_consistent():
    """deployments/kubernetes: every job variable the deployments set is a variable of the
    pool's template, the GPU variable reaches the container's nvidia.com/gpu limit, and the
    entrypoints exist. (Rendering with prefect-kubernetes was checked by hand: no cluster here.)"""
    import yaml

    folder = REPO / "deployments" / "kubernetes"
    template = json.loads((folder / "base-job-template.json").read_text())
    variables = template["variables"]["properties"]
    container = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "{{ gpu_limit }}"
    assert variables["gpu_limit"]["type"] == "integer" and variables["gpu_limit"]["default"] == 0
    spec = yaml.safe_load((folder / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in spec["deployments"]}
    assert set(by_name) == {"score-videos", "score-shard"}
    for dep in by_name.values():
        assert dep["work_pool"]["name"] == "vidqa-k8s"
        assert set(dep["work_pool"]["job_variables"]) <= set(variables), dep["work_pool"]["job_variables"]
        path, func = dep["entrypoint"].split(":")
        assert f"def {func}(" in (REPO / path).read_text()
        assert dep["work_pool"]["job_variables"]["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"
    assert by_name["score-shard"]["work_pool"]["job_variables"]["gpu_limit"] == 1
    assert by_name["score-videos"]["parameters"]["params"]["fan_out"]["enabled"] is True


def test_a_technical_shard_process_does_not_import_torch():
    """Each fanned-out shard is a fresh process: scorer modules load on first use, so one that
    runs only the technical scorer skips torch, open_clip and transformers (seconds per shard)."""
    code = ("import sys\n"
            "import flows.score_shard\n"
            "from vidqa.scorers import build_scorer\n"
            "from flows.score_shard import shard_gpus\n"
            "from vidqa.scoring.job import ScorerSpec\n"
            "build_scorer('technical', {}).setup()\n"
            "assert shard_gpus([ScorerSpec('technical')]) == 0\n"
            "print(sorted(m for m in ('torch', 'open_clip', 'transformers') if m in sys.modules))\n"
            "assert shard_gpus([ScorerSpec('aesthetic')]) > 0\n"
            "print(sorted(m for m in ('torch', 'open_clip', 'transformers') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    technical_only, with_aesthetic = out.stdout.split("\n")[:2]
    assert technical_only == "[]"
    assert with_aesthetic == "['torch']"  # a GPU scorer's module is imported when it is looked up


def test_fan_out_without_the_shard_deployment_fails_with_how_to_deploy_it(migrated_db, prefect_api_url, tmp_path):
    from flows.score_videos import ScoreVideosParams, score_videos

    source = video_set(tmp_path / "videos", 2)
    params = ScoreVideosParams(source=str(source), scorers=["technical"], fan_out={"enabled": True})
    state = score_videos(params, return_state=True)
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "'score-shard/score-shard'" in message and "prefect deploy --prefect-file deployments/prefect.yaml" in message
