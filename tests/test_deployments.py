"""deployments/prefect.yaml operated as documented, against a REAL Prefect server.

The module starts `prefect server start` (SQLite, temporary PREFECT_HOME), creates the
process work pool and deploys with the real `prefect deploy` CLI. Then: the nightly
schedule of `ingest-new` is what the yaml says and the server schedules it; `score-videos`
exposes its pydantic parameters as a form schema; a custom run created through the API
(what the UI's Custom run does) is executed by a real `prefect worker start` process,
writes its scores to Postgres and its artifacts to the server. No mocks.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from conftest import VIDEOS
from vidqa.scorers import SCORER_NAMES as REGISTERED_SCORERS
from prefect_server import FINAL_STATES, REPO, prefect_cmd, prefect_server, stop_group, tail  # noqa: F401 (fixture)

PREFECT_FILE = REPO / "deployments" / "prefect.yaml"
SCORER_NAMES = set(REGISTERED_SCORERS)
TECHNICAL_METRICS = {"luminance_mean", "luminance_min", "luminance_max", "sharpness", "mse_dyn", "ssim_dyn", "ssim_sim"}


@pytest.fixture(scope="module")
def deployed(prefect_server):
    """`prefect work-pool create` + `prefect deploy --all` from the repository root, as documented."""
    srv = prefect_server
    srv.cli("work-pool", "create", "vidqa", "--type", "process")
    srv.cli("concurrency-limit", "create", "vidqa-gpu", "1")
    out = srv.cli("--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--all",
                  env=srv.client_env(VIDQA_PROJECT_DIR=str(REPO)))
    names = ("score-videos", "ingest-new", "score-shard", "reference-stats", "distribution-metrics", "dedup")
    for name in names:
        assert f"{name}/{name}" in out.stdout, out.stdout
    return {name: srv.get(f"/deployments/name/{name}/{name}") for name in names}


def test_deployments_schedule_and_form(prefect_server, deployed):
    srv = prefect_server
    score, ingest = deployed["score-videos"], deployed["ingest-new"]
    for dep in deployed.values():  # heartbeats for the automation that crashes dead runs
        assert dep["job_variables"]["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30", dep["name"]
    assert deployed["score-shard"]["entrypoint"] == "flows/score_shard.py:score_shard_flow"
    for dep in (score, ingest):
        assert dep["work_pool_name"] == "vidqa"
        assert "vidqa" in dep["tags"]
        # The pull step enters the worker's checkout; its directory is resolved on the worker
        # at run time (VIDQA_PROJECT_DIR), not frozen at deploy time.
        steps = json.dumps(dep["pull_steps"])
        assert "prefect.deployments.steps.set_working_directory" in steps
        assert "VIDQA_PROJECT_DIR" in steps and str(REPO) not in steps
    for name in ("reference-stats", "distribution-metrics"):
        dep = deployed[name]
        assert dep["work_pool_name"] == "vidqa" and "set-metrics" in dep["tags"] and dep["schedules"] == []
        assert dep["entrypoint"] == f"flows/{name.replace('-', '_')}.py:{name.replace('-', '_')}"
        form = dep["parameter_openapi_schema"]["definitions"]
        model = form[dep["parameter_openapi_schema"]["properties"]["params"]["$ref"].rsplit("/", 1)[1]]
        assert {"metrics", "height", "width", "num_runs", "seed"} <= set(model["properties"])
    # dedup: on demand, and run by an automation when an ingest-new run completes.
    dedup = deployed["dedup"]
    assert dedup["entrypoint"] == "flows/dedup.py:dedup" and dedup["schedules"] == [] and "curation" in dedup["tags"]
    [automation] = srv.get(f"/automations/related-to/prefect.deployment.{dedup['id']}")
    trigger = automation["trigger"]
    assert automation["enabled"] and trigger["expect"] == ["prefect.flow-run.Completed"]
    assert trigger["match_related"]["prefect.resource.name"] == "ingest-new"
    assert automation["actions"][0]["type"] == "run-deployment"
    assert automation["actions"][0]["deployment_id"] == dedup["id"]
    assert score["entrypoint"] == "flows/score_videos.py:score_videos"
    assert ingest["entrypoint"] == "flows/ingest_new.py:ingest_new"
    assert srv.get("/work_pools/vidqa")["type"] == "process"
    assert srv.get("/concurrency_limits/tag/vidqa-gpu")["concurrency_limit"] == 1

    # score-videos is ad hoc; ingest-new runs nightly at 02:00 UTC over a configured prefix.
    assert score["schedules"] == []
    assert score["parameters"]["params"]["source"]
    assert ingest["parameters"]["params"]["source"].startswith("s3://")
    assert ingest["paused"] is False
    [sched] = ingest["schedules"]
    assert sched["active"] is True
    assert sched["schedule"]["cron"] == "0 2 * * *" and sched["schedule"]["timezone"] == "UTC"

    # ... and the server's scheduler turns the cron into runs at 02:00 UTC.
    # (Prefect 3.8's scheduler cannot insert runs under SQLAlchemy 2.1: "Can't evaluate bulk
    # DML statement" in the server log, and a nightly schedule that never fires.)
    deadline, runs = time.monotonic() + 30, []
    while not runs and time.monotonic() < deadline:
        runs = srv.post("/flow_runs/filter", {
            "deployments": {"id": {"any_": [ingest["id"]]}},
            "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
            "sort": "EXPECTED_START_TIME_ASC",
        })
        if not runs:
            time.sleep(1)
    assert runs, (f"the server scheduled no ingest-new run in 30 s (SQLAlchemy {sa.__version__}); "
                  f"server log:\n{tail(srv.log, 3000)}")
    starts = [datetime.fromisoformat(r["expected_start_time"]).astimezone(timezone.utc) for r in runs]
    assert all((t.hour, t.minute, t.second) == (2, 0, 0) for t in starts), starts
    now = datetime.now(timezone.utc)
    assert now - timedelta(minutes=1) < starts[0] <= now + timedelta(days=1), starts[0]
    assert all(r["parameters"]["params"]["source"] == ingest["parameters"]["params"]["source"] for r in runs)

    # The form the UI renders for a custom run: `params` -> the pydantic model's titled fields.
    schema = score["parameter_openapi_schema"]
    assert schema["required"] == ["params"]
    ref = schema["properties"]["params"]["$ref"]
    assert ref.startswith("#/definitions/")
    model = schema["definitions"][ref.rsplit("/", 1)[1]]
    assert model["required"] == ["source"]
    props = model["properties"]
    assert props["source"]["title"] == "Source" and props["source"]["type"] == "string"
    assert props["source"]["description"]
    assert props["scorers"]["type"] == "array" and props["scorers"]["title"] == "Scorers"
    assert set(props["scorers"]["items"]["enum"]) == SCORER_NAMES
    assert props["shard_size"]["title"] == "Shard size" and props["shard_size"]["minimum"] == 1
    assert props["technical"]["title"] == "Technical metrics" and props["videoscore"]["title"] == "VideoScore"
    assert props["fan_out"]["title"] == "Fan-out"
    fan_out = schema["definitions"][props["fan_out"]["$ref"].rsplit("/", 1)[1]]["properties"]
    assert {"enabled", "deployment", "max_in_flight", "shard_retries", "job_variables"} <= set(fan_out)
    assert fan_out["enabled"]["default"] is False and fan_out["max_in_flight"]["minimum"] == 1
    assert all(p.get("title") for p in props.values()), [k for k, p in props.items() if not p.get("title")]
    assert "params" in ingest["parameter_openapi_schema"]["properties"]


def test_custom_run_executed_by_a_process_worker(prefect_server, deployed, migrated_db, tmp_path):
    srv = prefect_server
    score, ingest = deployed["score-videos"], deployed["ingest-new"]
    source = tmp_path / "videos"
    source.mkdir()
    good = ["counter.mp4", "fades.mp4"]
    for name in good:
        (source / name).symlink_to(VIDEOS / name)
    (source / "bad.mp4").write_bytes(b"")

    # Only our run may be due for the worker: pausing ingest-new deletes its scheduled runs
    # (one could fall due while this test runs at 02:00 UTC).
    srv.post(f"/deployments/{ingest['id']}/pause_deployment", {})
    try:
        params = {"params": {"source": str(source), "scorers": ["technical"],
                             "technical": {"sampling": {"n": 2}}, "shard_size": 1}}
        # What the UI's "Custom run" posts; the server validates it against the schema.
        run = srv.post(f"/deployments/{score['id']}/create_flow_run", {"parameters": params})
        run_id = run["id"]
        assert run["parameters"] == params

        worker_dir = tmp_path / "worker"  # not the checkout: the pull step must enter it
        worker_dir.mkdir()
        worker_log = tmp_path / "worker.log"
        env = srv.client_env(
            VIDQA_DATABASE_URL=migrated_db, VIDQA_PROJECT_DIR=str(REPO),
            VIDQA_HOME=str(tmp_path / "vidqa-home"), PREFECT_LOGGING_LEVEL="INFO",
        )
        with open(worker_log, "wb") as log:
            worker = subprocess.Popen(
                [*prefect_cmd(), "worker", "start", "--pool", "vidqa", "--run-once"],
                cwd=worker_dir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            deadline, state = time.monotonic() + 300, None
            while time.monotonic() < deadline:
                state = srv.get(f"/flow_runs/{run_id}")["state_type"]
                if state in FINAL_STATES or worker.poll() is not None:
                    break
                time.sleep(1)
            state = srv.get(f"/flow_runs/{run_id}")["state_type"]
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        finally:
            stop_group(worker, grace=10)
    finally:
        srv.post(f"/deployments/{ingest['id']}/resume_deployment", {})

    logs = srv.post("/logs/filter", {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 200})
    log_text = "\n".join(entry["message"] for entry in logs)
    assert state == "COMPLETED", f"flow run ended {state}\n--- worker ---\n{tail(worker_log)}\n--- run logs ---\n{log_text[-6000:]}"
    assert "set_working_directory" in log_text

    # Postgres: two scored videos, the empty one failed with its reason; the run is linked.
    engine = sa.create_engine(migrated_db)
    try:
        with engine.connect() as conn:
            videos = {os.path.basename(r.uri): r for r in conn.execute(sa.text(
                "SELECT uri, status, failure_reason FROM videos"))}
            sharpness = dict(conn.execute(sa.text(
                "SELECT v.uri, count(*) FROM scores s JOIN clips c ON c.id = s.clip_id "
                "JOIN videos v ON v.id = c.video_id WHERE s.metric = 'sharpness' GROUP BY v.uri")).all())
            metrics = set(conn.execute(sa.text("SELECT DISTINCT metric FROM scores")).scalars())
            runs = conn.execute(sa.text("SELECT * FROM runs")).mappings().all()
    finally:
        engine.dispose()
    assert set(videos) == {*good, "bad.mp4"}
    for name in good:
        assert videos[name].status == "ok", videos[name]
        assert sharpness.get(str(VIDEOS / name)) == 1, sharpness  # a link is stored as its target
    assert videos["bad.mp4"].status == "failed"
    assert videos["bad.mp4"].failure_reason == "empty file (0 bytes)"
    assert metrics == TECHNICAL_METRICS
    [db_run] = runs
    assert db_run["flow_run_id"] == uuid.UUID(run_id)
    assert db_run["flow_name"] == "score-videos"
    assert db_run["status"] == "completed"
    assert (db_run["n_videos"], db_run["n_scored"], db_run["n_failed"]) == (3, 2, 1)
    assert db_run["parameters"]["technical"]["sampling"]["n"] == 2

    # Artifacts on the server, for this flow run.
    artifacts = srv.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}})
    by_key = {a["key"]: a for a in artifacts}
    assert {"vidqa-score-summary", "vidqa-score-extremes", "vidqa-score-progress"} <= set(by_key), sorted(by_key)
    summary = by_key["vidqa-score-summary"]
    assert summary["type"] == "table"
    table = summary["data"] if isinstance(summary["data"], list) else json.loads(summary["data"])
    rows = {row["metric"]: row for row in table}
    assert set(rows) == TECHNICAL_METRICS
    assert rows["sharpness"]["n"] == 2
    assert "2 scored" in summary["description"] and "1 failed" in summary["description"]
    extremes = by_key["vidqa-score-extremes"]
    assert extremes["type"] == "markdown"
    assert "sharpness" in extremes["data"]
    assert "bad.mp4" in extremes["data"] and "empty file (0 bytes)" in extremes["data"]
    progress = by_key["vidqa-score-progress"]
    assert progress["type"] == "progress"
    assert float(progress["data"]) == 100.0


def test_a_cancelled_run_is_closed(prefect_server, deployed, migrated_db, tmp_path):
    """A custom run cancelled from the UI/API while its process worker scores: the worker
    kills the flow run's process, and the run row is closed (not left `running`)."""
    from conftest import run_ffmpeg

    srv = prefect_server
    score, ingest = deployed["score-videos"], deployed["ingest-new"]
    source = tmp_path / "videos"
    source.mkdir()
    for i in range(4):
        run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=8", "-c:v", "libx264",
                   "-pix_fmt", "yuv420p", str(source / f"v{i}.mp4"))
    engine = sa.create_engine(migrated_db)

    def run_row():
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT * FROM runs")).mappings().first()

    srv.post(f"/deployments/{ingest['id']}/pause_deployment", {})
    worker = None
    try:
        params = {"params": {"source": str(source), "scorers": ["technical"], "shard_size": 1,
                             "technical": {"sampling": {"method": "all"}}}}
        run_id = srv.post(f"/deployments/{score['id']}/create_flow_run", {"parameters": params})["id"]
        env = srv.client_env(VIDQA_DATABASE_URL=migrated_db, VIDQA_PROJECT_DIR=str(REPO),
                             VIDQA_HOME=str(tmp_path / "vidqa-home"))
        (tmp_path / "worker").mkdir()
        with open(tmp_path / "worker.log", "wb") as log:
            worker = subprocess.Popen([*prefect_cmd(), "worker", "start", "--pool", "vidqa"], cwd=tmp_path / "worker",
                                      env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and (run_row() is None or srv.get(f"/flow_runs/{run_id}")["state_type"]
                                              != "RUNNING"):
            time.sleep(1)
        assert run_row() is not None and run_row()["status"] == "running", tail(tmp_path / "worker.log")
        srv.post(f"/flow_runs/{run_id}/set_state", {"state": {"type": "CANCELLING", "name": "Cancelling"}, "force": True})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (srv.get(f"/flow_runs/{run_id}")["state_type"] != "CANCELLED"
                                              or run_row()["status"] == "running"):
            time.sleep(1)
        state = srv.get(f"/flow_runs/{run_id}")["state_type"]
    finally:
        if worker is not None:
            stop_group(worker, grace=10)
        srv.post(f"/deployments/{ingest['id']}/resume_deployment", {})
    row = run_row()
    engine.dispose()
    assert state == "CANCELLED", tail(tmp_path / "worker.log")
    assert row["status"] == "failed" and row["error"].startswith("Cancel") and row["finished_at"], \
        (dict(row), tail(tmp_path / "worker.log"))
