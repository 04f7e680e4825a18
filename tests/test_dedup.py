"""Near-duplicate groups (``vidqa dedup``, revision 0014) against an independent brute force:
every pair's float64 cosine, the same edge rule, and connected components found by a plain
breadth-first search. Embeddings are built so that the expected groups are certain (angles in
a plane), then the real path runs on shared videos and their re-encoded and cropped copies."""

import json
from collections import deque

import numpy as np
import pytest
import sqlalchemy as sa

from conftest import VIDEOS, run_ffmpeg, run_shard, vidqa_cli
from vidqa.curation.dedup import components, deduplicate
from vidqa.db import get_engine
from vidqa.db.embeddings import register_embedding_model, write_clip_embedding
from vidqa.db.export import export_selection
from vidqa.db.tables import clips, videos
from vidqa.scoring.job import ScorerSpec
from vidqa.scoring.shard import prepare_scorers
from vidqa.storage import Storage

DIM = 512
MODEL = "synthetic-encoder"
SAMPLING = "synthetic-sampling"


def in_plane(degrees: float, rng: np.random.Generator, basis: np.ndarray) -> np.ndarray:
    """A unit vector at ``degrees`` from basis[0] towards basis[1], plus a tiny orthogonal wobble."""
    t = np.radians(degrees)
    v = np.cos(t) * basis[0] + np.sin(t) * basis[1] + 1e-4 * rng.normal(size=DIM)
    return v / np.linalg.norm(v)


class Library:
    """Videos, clips and embeddings written straight into the tables, as scoring would."""

    def __init__(self, engine):
        self.engine = engine
        self.clips: dict[int, dict] = {}
        self.videos: dict[str, int] = {}
        with engine.begin() as conn:
            register_embedding_model(conn, MODEL, {"name": "synthetic"}, DIM, "synthetic (test)")

    def add(self, video: str, start: int, end: int, embedding: np.ndarray, split: str = "s", aesthetic=None) -> int:
        with self.engine.begin() as conn:
            if video not in self.videos:
                self.videos[video] = conn.execute(sa.insert(videos).values(
                    uri=f"/data/{video}.mp4", content_id=f"sha256:{video}", status="ok").returning(videos.c.id)).scalar()
            vid = self.videos[video]
            clip_id = conn.execute(sa.insert(clips).values(
                video_id=vid, kind="scene", start_frame=start, end_frame=end, start_time_s=start / 10,
                end_time_s=end / 10, split_hash=split).returning(clips.c.id)).scalar()
            write_clip_embedding(conn, clip_id, MODEL, SAMPLING, {"method": "synthetic"}, embedding, [start],
                                 None, None)
            if aesthetic is not None:
                conn.execute(sa.text(
                    "INSERT INTO scorer_configs (config_hash, scorer, config) VALUES ('aes', 'aesthetic', '{}') "
                    "ON CONFLICT DO NOTHING"))
                conn.execute(sa.text(
                    "INSERT INTO scores (clip_id, scorer, config_hash, metric, value, input_hash) "
                    "VALUES (:c, 'aesthetic', 'aes', 'aesthetic', :v, '')"), {"c": clip_id, "v": aesthetic})
        self.clips[clip_id] = {"video": vid, "start": start, "end": end, "e": embedding.astype(np.float32)}
        return clip_id


def brute_force_groups(lib: Library, threshold: float) -> list[set[int]]:
    """Groups of two or more, from every pair: float64 cosine >= threshold for clips that are not
    overlapping spans of one video, or the very same span of one video."""
    ids = sorted(lib.clips)
    e = np.array([lib.clips[i]["e"] for i in ids], dtype=np.float64)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    cos = e @ e.T
    adjacent = {i: set() for i in ids}
    for a in range(len(ids)):
        for b in range(a + 1, len(ids)):
            x, y = lib.clips[ids[a]], lib.clips[ids[b]]
            same_video = x["video"] == y["video"]
            same_span = same_video and (x["start"], x["end"]) == (y["start"], y["end"])
            overlap = same_video and x["start"] < y["end"] and y["start"] < x["end"]
            if same_span or (cos[a, b] >= threshold and not overlap):
                adjacent[ids[a]].add(ids[b])
                adjacent[ids[b]].add(ids[a])
    seen, groups = set(), []
    for start in ids:
        if start in seen:
            continue
        group, todo = set(), deque([start])
        while todo:
            n = todo.popleft()
            if n not in group:
                group.add(n)
                todo.extend(adjacent[n] - group)
        seen |= group
        if len(group) > 1:
            groups.append(group)
    return sorted(groups, key=min)


def stored_groups(engine, key=None) -> tuple[list[set[int]], dict[int, dict]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM duplicate_groups WHERE dedup_key = coalesce(:k, dedup_key)"),
                            {"k": key}).mappings().all()
    by_group: dict[int, set[int]] = {}
    for r in rows:
        by_group.setdefault(r["group_id"], set()).add(r["clip_id"])
    return sorted((g for g in by_group.values() if len(g) > 1), key=min), {r["clip_id"]: dict(r) for r in rows}


def test_groups_keepers_and_reruns_equal_a_brute_force(migrated_db, tmp_path):
    engine = get_engine(migrated_db)
    lib = Library(engine)
    rng = np.random.default_rng(0)
    plane = np.linalg.qr(rng.normal(size=(DIM, 2)))[0].T  # two orthonormal directions
    # A chain: a~b (14 degrees, cos 0.970) and b~c, but a and c are 28 degrees apart (cos 0.883).
    a = lib.add("v1", 0, 50, in_plane(0, rng, plane))
    b = lib.add("v2", 0, 50, in_plane(14, rng, plane))
    c = lib.add("v3", 0, 50, in_plane(28, rng, plane), aesthetic=6.5)
    # A scene of v1 overlapping a, 8 degrees from it on the other side: one footage, not a copy.
    own_scene = lib.add("v1", 10, 30, in_plane(-8, rng, plane))
    # The same frames of v4 stored under two split settings: exact duplicates.
    d = lib.add("v4", 0, 80, in_plane(90, rng, plane), split="scenes")
    d_again = lib.add("v4", 0, 80, lib.clips[d]["e"].astype(np.float64), split="windows")
    loners = [lib.add(f"u{i}", 0, 40, v / np.linalg.norm(v)) for i, v in enumerate(rng.normal(size=(6, DIM)))]

    result = deduplicate(engine)
    assert result.compared == len(lib.clips) and result.n_clips == len(lib.clips)
    groups, rows = stored_groups(engine)
    assert groups == brute_force_groups(lib, 0.95) == [{a, b, c}, {d, d_again}]
    # Keepers: the highest aesthetic; with none, the longest, then the oldest (first stored).
    assert rows[c]["reason"] == "keeper" and rows[c]["duplicate_of"] is None
    assert rows[a]["duplicate_of"] == rows[b]["duplicate_of"] == c
    assert rows[a]["reason"] == rows[b]["reason"] == "embedding"
    assert rows[d]["reason"] == "keeper" and (rows[d_again]["duplicate_of"], rows[d_again]["reason"]) == (d, "content")
    e = {i: lib.clips[i]["e"].astype(np.float64) / np.linalg.norm(lib.clips[i]["e"]) for i in lib.clips}
    assert abs(rows[a]["similarity"] - e[a] @ e[c]) < 1e-6  # to the keeper, not to its neighbour
    assert all(rows[i]["reason"] == "unique" and rows[i]["duplicate_of"] is None for i in [own_scene, *loners])
    assert (result.n_groups, result.n_duplicates) == (2, 3)
    assert [g["size"] for g in result.largest] == [3, 2] and result.largest[0]["keeper"] == c

    # The wide view and export: duplicate_of is null is one clip per group.
    with engine.connect() as conn:
        shown = dict(conn.execute(sa.text("SELECT clip_id, duplicate_of FROM clip_scores_wide")).all())
    assert shown == {i: rows[i]["duplicate_of"] for i in lib.clips}
    out = tmp_path / "dedup.jsonl"
    assert export_selection(engine, "duplicate_of is null", str(out)) == len(lib.clips) - 3
    assert {json.loads(line)["clip_id"] for line in out.read_text().splitlines()} == set(lib.clips) - {a, b, d_again}

    # New clips: one joins the chain's group, one pairs with a loner, one stays alone.
    joiner = lib.add("v5", 0, 50, in_plane(12, rng, plane))  # 20 degrees from v1's scene: not it
    loner = lib.clips[loners[0]]["e"].astype(np.float64)
    near_loner = lib.add("v7", 0, 50, in_plane(5, rng, np.stack([loner, plane[1]])))
    mid = lib.add("v6", 0, 50, in_plane(50, rng, plane))  # 22 degrees from c, the chain's nearest: alone
    again = deduplicate(engine)
    assert again.compared == 3  # the new clips only, each looked up in the index
    groups, rows = stored_groups(engine)
    assert groups == brute_force_groups(lib, 0.95)
    assert {a, b, c, joiner} in groups and {loners[0], near_loner} in groups and mid not in set().union(*groups)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM duplicate_groups")).scalar() == len(lib.clips)

    # Nothing new: nothing compared, nothing changed. Another keeper rule: every group re-kept.
    before = rows
    assert deduplicate(engine).compared == 0 and stored_groups(engine)[1] == before
    by_length = deduplicate(engine, keep_by="no_such_metric")
    assert by_length.compared == 0
    assert stored_groups(engine)[1][a]["reason"] == "keeper"  # the chain's oldest of the longest clips

    # A stricter threshold is another setting: compared from scratch, and the current one.
    strict = deduplicate(engine, threshold=0.999)
    assert strict.compared == len(lib.clips) and strict.dedup_key != again.dedup_key
    with engine.connect() as conn:
        shown = dict(conn.execute(sa.text("SELECT clip_id, duplicate_of FROM clip_scores_wide")).all())
    strict_groups, strict_rows = stored_groups(engine, strict.dedup_key)
    assert strict_groups == brute_force_groups(lib, 0.999) == [{b, joiner}, {d, d_again}]  # 2 degrees apart
    assert shown == {i: strict_rows[i]["duplicate_of"] for i in lib.clips}


def test_components_merge_stored_groups_through_new_edges():
    stored = {1: 1, 2: 1, 5: 5, 6: 5, 9: 9}
    assert components(stored, [(2, 7), (7, 6)]) == {1: 1, 2: 1, 5: 1, 6: 1, 7: 1, 9: 9}
    assert components({}, []) == {}


def test_dedup_refuses_bad_settings(migrated_db):
    engine = get_engine(migrated_db)
    with pytest.raises(LookupError, match="no clip embeddings are stored"):
        deduplicate(engine)
    with pytest.raises(ValueError, match="threshold"):
        deduplicate(engine, threshold=1.5)


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """videoscore_video1.mp4 re-encoded (half size, 150 kb/s) and cropped (85 %), beside the
    original and a different video."""
    folder = tmp_path_factory.mktemp("copies")
    original = VIDEOS / "videoscore_video1.mp4"
    (folder / "original.mp4").symlink_to(original)
    (folder / "other.mp4").symlink_to(VIDEOS / "Bfyp0C02sko_000248_000258.mp4")
    run_ffmpeg("-i", str(original), "-vf", "scale=iw/2:-2", "-b:v", "150k", "-an", str(folder / "reencoded.mp4"))
    run_ffmpeg("-i", str(original), "-vf", "crop=iw*0.85:ih*0.85", "-an", str(folder / "cropped.mp4"))
    return folder


def test_reencoded_and_cropped_copies_are_grouped_by_the_cli(copies, tiny_clip_512, migrated_db, tmp_path):
    """The real path: the embedding scorer (tiny random CLIP, 512-d), then `vidqa dedup` and
    `vidqa export --where "duplicate_of is null"`. Random weights pull every frame towards one
    direction (counter.mp4 is 0.987 from videoscore_video1.mp4 under them), so the different
    video here is one they do tell apart (0.85); the rule itself is the test above."""
    refs = Storage().list_videos(str(copies))
    specs = prepare_scorers([ScorerSpec("embedding", {"clip": {"model": tiny_clip_512, "pretrained": None}})], refs)
    engine = get_engine(migrated_db)
    run_shard(engine, refs, specs)
    env = {"VIDQA_DATABASE_URL": migrated_db}
    out = json.loads(vidqa_cli("dedup", "--format", "json", env=env).stdout)
    assert (out["compared"], out["groups"], out["duplicates"]) == (4, 1, 2)
    (group,) = out["largest_groups"]
    names = {m["uri"].rsplit("/", 1)[1] for m in group["members"]}
    assert names == {"videoscore_video1.mp4", "reencoded.mp4", "cropped.mp4"} and group["min_similarity"] >= 0.95
    assert vidqa_cli("dedup", "--format", "json", env=env).stdout.count('"compared": 0') == 1
    table = vidqa_cli("dedup", env=env).stdout
    assert "duplicate_of is null" in table and "3" in table
    exported = tmp_path / "kept.jsonl"
    vidqa_cli("export", "--where", "duplicate_of is null", "--out", str(exported), env=env)
    kept = [json.loads(line)["uri"].rsplit("/", 1)[1] for line in exported.read_text().splitlines()]
    assert len(kept) == 2 and "Bfyp0C02sko_000248_000258.mp4" in kept  # links are stored as their targets


def test_the_dedup_flow_publishes_the_largest_groups(migrated_db, prefect_api_url):
    """The Prefect flow (deployed as `dedup`, on demand and after each ingest-new run)."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.dedup import DedupParams, dedup

    engine = get_engine(migrated_db)
    lib = Library(engine)
    rng = np.random.default_rng(3)
    plane = np.linalg.qr(rng.normal(size=(DIM, 2)))[0].T
    trio = [lib.add(f"t{i}", 0, 50, in_plane(3 * i, rng, plane)) for i in range(3)]
    pair = [lib.add(f"p{i}", 0, 50 + i, in_plane(90 + 2 * i, rng, plane)) for i in range(2)]
    state = dedup(DedupParams(), return_state=True)
    assert state.is_completed(), state.message
    out = state.result()
    assert (out["compared"], out["groups"], out["duplicates"]) == (5, 2, 3)

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))

    (artifact,) = asyncio.run(read())
    assert artifact.key == "vidqa-dedup"
    text = artifact.data
    assert "# Near-duplicates: 2 groups, 3 duplicate clips of 5" in text and "duplicate_of is null" in text
    rows = [line for line in text.splitlines() if line.startswith(f"| {min(trio)} |") or line.startswith(f"| {min(pair)} |")]
    assert rows[0].startswith(f"| {min(trio)} | 3 |") and "/data/t0.mp4" in rows[0]  # largest first; keeper oldest
    assert rows[1].startswith(f"| {min(pair)} | 2 |") and rows[1].split("|")[4].strip().startswith("`/data/p1.mp4`")
    assert dedup(DedupParams(), return_state=True).result()["compared"] == 0
