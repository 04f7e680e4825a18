"""Text search over stored clip embeddings (``vidqa search``, ``vidqa_search``): the ranking
equals a brute-force float64 numpy ranking of the stored embeddings against the text embedding
of the same CLIP; the CLI and the SQL function give the same clips."""

import json

import numpy as np
import pytest
import sqlalchemy as sa

from conftest import VIDEOS, run_shard, vidqa_cli
from vidqa.curation.search import search_text
from vidqa.db import get_engine
from vidqa.db.views import refresh_if_stale
from vidqa.errors import ScorerError
from vidqa.models.clip_model import encode_texts, load_clip
from vidqa.scoring.job import ScorerSpec
from vidqa.scoring.shard import prepare_scorers
from vidqa.storage import Storage

SAMPLES = ["videoscore_video1.mp4", "Bfyp0C02sko_000248_000258.mp4", "counter.mp4", "flipping_a_pancake.mkv",
           "fades.mp4", "video_90.mov"]
TEXT = "a person flipping a pancake in a kitchen"


@pytest.fixture
def scored(tiny_clip_512, migrated_db, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in SAMPLES:
        (folder / name).symlink_to(VIDEOS / name)
    refs = Storage().list_videos(str(folder))
    clip = {"model": tiny_clip_512, "pretrained": None}
    specs = prepare_scorers([ScorerSpec("embedding", {"clip": clip}), ScorerSpec("technical", {})], refs)
    engine = get_engine(migrated_db)
    run_shard(engine, refs, specs)
    refresh_if_stale(engine)  # as a run's end does: the metric columns
    return engine


def brute_force(engine, model_path, text, where=""):
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT e.clip_id, e.embedding FROM clip_embeddings e JOIN clip_scores_wide w USING (clip_id) "
            f"WHERE true {where}")).all()
    ids = np.array([r[0] for r in rows])
    matrix = np.array([r[1] for r in rows], dtype=np.float64)
    q = encode_texts(load_clip(model_path, None), [text])[0].double().numpy()
    sims = matrix @ (q / np.linalg.norm(q))
    order = np.argsort(-sims, kind="stable")
    return list(ids[order]), sims[order]


def test_search_ranks_as_brute_force_numpy(scored, tiny_clip_512):
    expected, sims = brute_force(scored, tiny_clip_512, TEXT)
    assert len(expected) == len(SAMPLES)
    space, rows = search_text(scored, TEXT, top=4)
    assert [r["clip_id"] for r in rows] == expected[:4] and [r["rank"] for r in rows] == [1, 2, 3, 4]
    assert np.abs(np.array([r["similarity"] for r in rows]) - sims[:4]).max() < 1e-5
    assert rows[0]["uri"].endswith(tuple(SAMPLES)) and rows[0]["scores"]["sharpness"] > 0  # its scores come along
    assert space.dim == 512

    # --where: only the clips the condition keeps, still in brute-force order.
    where_expected, _ = brute_force(scored, tiny_clip_512, TEXT, "AND w.width >= 640")
    _, rows = search_text(scored, TEXT, top=10, where="width >= 640")
    assert [r["clip_id"] for r in rows] == where_expected and 0 < len(rows) < len(SAMPLES)
    with pytest.raises(ValueError, match="not a predicate"):
        search_text(scored, TEXT, where="1=1; DROP TABLE scores")


def test_the_cli_and_the_sql_function_agree(scored, tiny_clip_512, migrated_db):
    expected, _ = brute_force(scored, tiny_clip_512, TEXT)
    env = {"VIDQA_DATABASE_URL": migrated_db}
    unnamed = vidqa_cli("search", TEXT, env=env, check=False)  # a config file's path is not in the identity
    assert unnamed.returncode == 2 and "give it with --clip-model" in unnamed.stderr
    named = ("--clip-model", tiny_clip_512)
    rows = json.loads(vidqa_cli("search", TEXT, "--top", "3", "--format", "json", *named, env=env).stdout)
    assert [r["clip_id"] for r in rows] == expected[:3]
    table = vidqa_cli("search", TEXT, "--top", "3", *named, env=env).stdout
    assert "similarity" in table and rows[0]["uri"].rsplit("/", 1)[1] in table
    # From psql: clips like a given clip (its own embedding as the query) - itself first.
    with scored.connect() as conn:
        first = conn.execute(sa.text(
            "SELECT clip_id, similarity FROM vidqa_search((SELECT embedding FROM clip_embeddings WHERE clip_id = :c), 2)"),
            {"c": expected[-1]}).all()
    assert first[0][0] == expected[-1] and abs(first[0][1] - 1) < 1e-6 and len(first) == 2
    bad = vidqa_cli("search", TEXT, "--model", "nope", env=env, check=False)
    assert bad.returncode == 2 and "no stored clip embeddings match model 'nope'" in bad.stderr


def test_the_encoder_must_be_the_one_that_made_the_embeddings(scored, tiny_clip):
    with pytest.raises(ScorerError, match="is not the encoder of the stored embeddings"):
        search_text(scored, TEXT, clip_model=tiny_clip[32])
