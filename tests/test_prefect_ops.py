"""Operating with Prefect: identity-keyed task caching, incremental ingest on a loopback S3
endpoint, result storage in S3, and the artifacts each run writes (Prefect's test harness
server, real Postgres, real moto server)."""

import asyncio
import json
import uuid

import pytest
import sqlalchemy as sa

from conftest import VIDEOS
from vidqa.video.clips import ClipSpec
from vidqa.db import get_engine
from vidqa.scoring.job import ScorerSpec, ShardJob
from vidqa.scoring.queue import SCORER_CALLS
from vidqa.storage import VideoRef

NAMES = ("video_90.mov", "counter.mp4", "videoscore_video1.mp4")


def manifest(tmp_path, names=NAMES):
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps({"video_path": str(VIDEOS / n), "prompt": f"a video called {n}"})
                              for n in names) + "\n")
    return str(path)


def flow_task_states(flow_run_id, name_prefix):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read():
        async with get_client() as client:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        return sorted(r.state.name for r in runs if r.name.startswith(name_prefix))

    return asyncio.run(read())


def flow_artifacts(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))

    return {a.type: a for a in asyncio.run(read())}


def run_flow(flow, params):
    state = flow(params, return_state=True)
    assert state.is_completed(), state.message
    return state.result(), state.state_details.flow_run_id


def test_identical_run_computes_nothing_and_a_changed_setting_only_its_scorer(
    tiny_clip, tmp_path, migrated_db, prefect_api_url
):
    from flows.score_videos import ScoreVideosParams, score_videos

    params = ScoreVideosParams(
        source=manifest(tmp_path), scorers=["technical", "text_video"], shard_size=2,
        technical={"sampling": {"n": 2}},
        text_video={"clip": {"model": tiny_clip[32], "pretrained": None}, "sampling": {"method": "uniform", "n": 2}},
    )
    before = SCORER_CALLS.copy()
    first, first_id = run_flow(score_videos, params)
    assert first.n_scored == 3
    assert SCORER_CALLS["technical"] - before["technical"] == 3
    assert SCORER_CALLS["text_video"] - before["text_video"] == 3

    mid = SCORER_CALLS.copy()
    second, second_id = run_flow(score_videos, params)
    assert SCORER_CALLS == mid  # nothing computed: not one clip reached a scorer
    assert (second.n_skipped, second.n_scored, second.n_scores_written) == (3, 0, 0)
    assert flow_task_states(second_id, "score-shard-videos") == ["Cached", "Cached"]
    assert flow_task_states(first_id, "score-shard-videos") == ["Completed", "Completed"]

    changed = params.model_copy(update={"text_video": params.text_video.model_copy(update={"reduce": "max"})})
    third, _ = run_flow(score_videos, changed)
    assert SCORER_CALLS["text_video"] - mid["text_video"] == 3  # the changed scorer, again
    assert SCORER_CALLS["technical"] == mid["technical"]  # the unchanged one, from the ledger
    with get_engine(migrated_db).connect() as conn:
        configs = conn.execute(sa.text(
            "SELECT count(DISTINCT config_hash) FROM scores WHERE scorer = 'text_video'")).scalar()
    assert configs == 2


def test_artifacts_summary_progress_and_extremes(tmp_path, migrated_db, prefect_api_url):
    from flows.score_videos import ScoreVideosParams, score_videos

    folder = tmp_path / "videos"
    folder.mkdir()
    for name in NAMES:
        (folder / name).symlink_to(VIDEOS / name)
    (folder / "broken.mp4").write_bytes(b"")
    summary, run_id = run_flow(score_videos, ScoreVideosParams(
        source=str(folder), technical={"sampling": {"n": 3}}, shard_size=2))
    artifacts = flow_artifacts(run_id)
    assert set(artifacts) == {"table", "markdown", "progress"}
    assert artifacts["progress"].data == pytest.approx(100.0)

    table = artifacts["table"]
    assert table.key == "vidqa-score-summary"
    rows = {r["metric"]: r for r in json.loads(table.data)}
    with get_engine(migrated_db).connect() as conn:
        sharpness = conn.execute(sa.text("SELECT value FROM scores WHERE metric = 'sharpness' ORDER BY value")).scalars().all()
        lowest_uri = conn.execute(sa.text(
            "SELECT v.uri FROM scores s JOIN clips c ON c.id = s.clip_id JOIN videos v ON v.id = c.video_id "
            "WHERE s.metric = 'sharpness' ORDER BY s.value LIMIT 1")).scalar()
    import numpy as np

    assert rows["sharpness"]["n"] == len(sharpness) == 3
    assert rows["sharpness"]["p50"] == pytest.approx(float(np.percentile(sharpness, 50)), rel=1e-6)
    assert rows["sharpness"]["p95"] == pytest.approx(float(np.percentile(sharpness, 95)), rel=1e-6)
    assert "3 scored" in table.description and "1 failed" in table.description

    markdown = artifacts["markdown"].data
    section = markdown.split("## `sharpness`")[1].split("## ")[0]
    lowest = section.split("**lowest**")[1].split("**highest**")[0]
    assert lowest.strip().splitlines()[0].endswith(f"`{lowest_uri}`")
    assert "broken.mp4" in markdown.split("## Failed videos")[1]


def test_ingest_new_scores_only_new_objects(s3_endpoint, tmp_path, migrated_db, prefect_api_url, monkeypatch):
    from flows.ingest_new import IngestNewParams, ingest_new
    from vidqa.config import reload_settings

    for k, v in {**s3_endpoint.env(), "VIDQA_HOME": str(tmp_path / "home")}.items():
        monkeypatch.setenv(k, v)
    reload_settings()
    prefix = f"ingest-{uuid.uuid4().hex[:8]}"
    for name in NAMES[:2]:
        s3_endpoint.put(f"{prefix}/{name}", VIDEOS / name)
    params = IngestNewParams(source=f"s3://{s3_endpoint.bucket}/{prefix}/", technical={"sampling": {"n": 2}})

    before = SCORER_CALLS["technical"]
    first, _ = run_flow(ingest_new, params)
    assert (first.n_listed, first.n_new, first.n_scored) == (2, 2, 2)
    s3_endpoint.put(f"{prefix}/{NAMES[2]}", VIDEOS / NAMES[2])
    second, _ = run_flow(ingest_new, params)
    assert (second.n_listed, second.n_new, second.n_scored) == (3, 1, 1)
    assert SCORER_CALLS["technical"] - before == 3  # each object scored once
    # A replaced object (new ETag) is new again; an unchanged listing has nothing to do.
    s3_endpoint.put(f"{prefix}/{NAMES[0]}", VIDEOS / "fades.mp4")
    third, _ = run_flow(ingest_new, params)
    assert (third.n_new, third.n_scored) == (1, 1)
    fourth, fourth_id = run_flow(ingest_new, params)
    assert (fourth.n_listed, fourth.n_new, fourth.n_videos) == (3, 0, 0)
    assert flow_artifacts(fourth_id)["progress"].data == pytest.approx(100.0)
    with get_engine(migrated_db).connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT uri, count(*) FROM videos GROUP BY uri")).all())
    # The replaced object's two contents are both kept; the others were scored once.
    assert rows == {f"{params.source}{n}": 2 if n == NAMES[0] else 1 for n in NAMES}


def test_cached_results_live_in_s3_when_configured(s3_endpoint, tmp_path, migrated_db, prefect_api_url, monkeypatch):
    from flows.score_videos import ScoreVideosParams, score_videos
    from vidqa.config import reload_settings

    results = f"results-{uuid.uuid4().hex[:8]}"
    env = {**s3_endpoint.env(), "VIDQA_HOME": str(tmp_path / "home"),
           "VIDQA_RESULT_STORAGE": f"s3://{s3_endpoint.bucket}/{results}"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reload_settings()
    params = ScoreVideosParams(source=str(VIDEOS / NAMES[0]), technical={"sampling": {"n": 2}})
    run_flow(score_videos, params)
    listed = s3_endpoint.client.list_objects_v2(Bucket=s3_endpoint.bucket, Prefix=results + "/")
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert any(k.split("/")[-1].startswith("vidqa-shard-") for k in keys), keys
    _, second_id = run_flow(score_videos, params)
    assert flow_task_states(second_id, "score-shard-videos") == ["Cached"]


def shard_identity(refs, specs, clips, database):
    return ShardJob(run_id=str(uuid.uuid4()), refs=refs, scorers=specs, clips=clips).identity(database)


def test_shard_identity_is_built_from_identities_only():
    specs = [ScorerSpec("technical", {}, {}, "abc")]
    local = VideoRef(str(VIDEOS / NAMES[0]), size=10, mtime=1.0, fields={"prompt": "x"})
    remote = VideoRef("s3://b/k.mp4", size=10, etag='"e1"')
    base = shard_identity([local, remote], specs, ClipSpec(), "db1")
    assert base == shard_identity([local, remote], specs, ClipSpec(), "db1")
    variants = [
        ([VideoRef(local.uri, size=10, mtime=2.0, fields=local.fields), remote], specs, ClipSpec(), "db1"),
        ([local, VideoRef(remote.uri, size=10, etag='"e2"')], specs, ClipSpec(), "db1"),
        ([VideoRef(local.uri, size=10, mtime=1.0, fields={"prompt": "y"}), remote], specs, ClipSpec(), "db1"),
        ([local, remote], [ScorerSpec("technical", {}, {}, "abd")], ClipSpec(), "db1"),
        ([local, remote], specs, ClipSpec(method="windows", window_s=2.0), "db1"),
        ([local, remote], specs, ClipSpec(), "db2"),
    ]
    assert len({base, *(shard_identity(*v) for v in variants)}) == len(variants) + 1
    # An object named by a manifest has no listed ETag: nothing may be reused for it.
    assert shard_identity([VideoRef("s3://b/m.mp4")], specs, ClipSpec(), "db1") is None
    assert shard_identity([local], [ScorerSpec("technical", {}, {}, None)], ClipSpec(), "db1") is None
