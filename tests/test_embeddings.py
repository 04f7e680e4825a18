"""Clip embeddings in Postgres (revision 0013): the pooled CLIP embedding of each clip, kept by
the CLIP scorers as a by-product and by the ``embedding`` scorer; checked against a float64
numpy pooling of the encoder's own outputs, and searched through pgvector's HNSW index against
a brute-force numpy ranking. On a server where pgvector cannot be created, the schema and the
scoring still work."""

import json
import uuid

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from conftest import VIDEOS, run_shard
from vidqa.db import get_engine, upgrade
from vidqa.db.embeddings import vector_installed
from vidqa.hashing import stable_hash
from vidqa.models.clip_model import encode_images, load_clip
from vidqa.scoring.job import ScorerSpec
from vidqa.scoring.shard import prepare_scorers
from vidqa.storage import Storage
from vidqa.video.decode import decode_frames
from vidqa.video.probe import probe_video

SAMPLES = [VIDEOS / "videoscore_video1.mp4", VIDEOS / "Bfyp0C02sko_000248_000258.mp4", VIDEOS / "counter.mp4",
           VIDEOS / "flipping_a_pancake.mkv"]


def folder_of(tmp_path, videos):
    folder = tmp_path / "videos"
    folder.mkdir()
    for v in videos:
        (folder / v.name).symlink_to(v)
    return Storage().list_videos(str(folder))


def numpy_pooled(model, uri, frame_indices):
    frames = decode_frames(uri, probe_video(uri), frame_indices).array
    x = encode_images(model, frames).double().numpy()
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    mean = x.mean(axis=0)
    return mean / np.linalg.norm(mean), x


def stored(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT v.uri, e.* FROM clip_embeddings e JOIN clips c ON c.id = e.clip_id "
            "JOIN videos v ON v.id = c.video_id ORDER BY v.uri")).mappings().all()


def test_the_embedding_scorer_stores_what_numpy_pools(tiny_clip_512, tmp_path, migrated_db, monkeypatch):
    from vidqa.config import reload_settings

    monkeypatch.setenv("VIDQA_STORE_FRAME_EMBEDDINGS", "1")
    reload_settings()
    refs = folder_of(tmp_path, SAMPLES[:2])
    clip = {"model": tiny_clip_512, "pretrained": None}
    specs = prepare_scorers([ScorerSpec("embedding", {"clip": clip, "sampling": {"method": "uniform", "n": 4}})],
                            refs)
    engine = get_engine(migrated_db)
    assert [o.status for o in run_shard(engine, refs, specs).outcomes] == ["scored", "scored"]
    rows = stored(engine)
    assert len(rows) == 2
    model = load_clip(tiny_clip_512, None)
    for row in rows:
        expected, frames = numpy_pooled(model, row["uri"], row["frame_indices"])
        assert row["dim"] == 512 and len(row["frame_indices"]) == 4
        assert np.abs(np.asarray(row["embedding"]) - expected).max() < 1e-6
        assert np.asarray(row["frame_embeddings"]).shape == (4, 512)
        assert np.abs(np.asarray(row["frame_embeddings"]) - frames).max() < 1e-6
        assert row["sampling"]["method"] == "uniform" and row["sampling_hash"] == stable_hash(row["sampling"])
    with engine.connect() as conn:
        (encoder,) = conn.execute(sa.text("SELECT * FROM embedding_models")).mappings().all()
        frames_metric = conn.execute(sa.text("SELECT value FROM scores WHERE metric = 'embedding_frames'")).scalars()
        assert list(frames_metric) == [4.0, 4.0]
    assert encoder["identity"] == json.loads(json.dumps(model.identity())) and encoder["dim"] == 512
    assert encoder["model_hash"] == rows[0]["model_hash"] == stable_hash(model.identity())


def test_clip_scorers_keep_embeddings_without_another_encoder_pass(tiny_clip, tmp_path, migrated_db,
                                                                   encoded_frames):
    """EMScore, the embedding scorer and clip_consistency on one CLIP and one sampling: each frame
    is encoded once, each clip gets one embedding row, and a rerun writes none again."""
    clip = {"model": tiny_clip[32], "pretrained": None}
    sampling = {"method": "every_n_seconds", "seconds": 2.0}
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"video_path": str(v), "candidate": "a video"}) + "\n"
                                for v in SAMPLES[:3]))
    refs = Storage().list_videos(str(manifest))
    specs = prepare_scorers([ScorerSpec("emscore", {"clip": clip, "sampling": sampling, "idf": False}),
                             ScorerSpec("embedding", {"clip": clip, "sampling": sampling}),
                             ScorerSpec("clip_consistency", {"clip": clip, "sampling": sampling})], refs)
    engine = get_engine(migrated_db)
    run_shard(engine, refs, specs)
    rows = stored(engine)
    assert len(rows) == 3
    assert sum(encoded_frames) == sum(len(r["frame_indices"]) for r in rows)  # one pass for three scorers
    assert all(r["frame_embeddings"] is None for r in rows)  # frames are kept only when asked for
    model = load_clip(tiny_clip[32], None)
    for row in rows:
        expected, _ = numpy_pooled(model, row["uri"], row["frame_indices"])
        assert np.abs(np.asarray(row["embedding"]) - expected).max() < 1e-6
    again = run_shard(engine, refs, specs)
    assert [o.status for o in again.outcomes] == ["skipped"] * 3
    assert stored(engine) == rows


def test_the_hnsw_index_finds_what_brute_force_finds(tiny_clip_512, tmp_path, migrated_db):
    refs = folder_of(tmp_path, SAMPLES)
    specs = prepare_scorers([ScorerSpec("embedding", {"clip": {"model": tiny_clip_512, "pretrained": None}})], refs)
    engine = get_engine(migrated_db)
    run_shard(engine, refs, specs)
    rows = stored(engine)
    assert len(rows) == len(SAMPLES)
    matrix = np.asarray([r["embedding"] for r in rows], dtype=np.float64)
    query = np.random.default_rng(4).normal(size=512)
    brute = [rows[i]["clip_id"] for i in np.argsort(-(matrix @ (query / np.linalg.norm(query))))]
    literal = "[" + ",".join(f"{v:.9g}" for v in query) + "]"
    search = sa.text("SELECT clip_id FROM clip_embeddings WHERE dim = 512 "
                     "ORDER BY embedding::vector(512) <=> CAST(:q AS vector) LIMIT 3")
    with engine.begin() as conn:
        assert vector_installed(conn)
        conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(r[0] for r in conn.execute(sa.text("EXPLAIN " + str(search)), {"q": literal}))
        found = list(conn.execute(search, {"q": literal}).scalars())
    assert "ix_clip_embeddings_hnsw_512" in plan
    assert found == brute[:3]


def test_without_pgvector_the_schema_and_scoring_still_work(tiny_clip, tmp_path, pg_admin_url, caplog):
    """A role that may not create the extension (pgvector is not a trusted extension) migrates
    a database of its own: the tables come, the HNSW indexes do not, and embeddings are stored."""
    role = f"vidqa_plain_{uuid.uuid4().hex[:8]}"
    database = f"vidqa_plain_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER'))
        conn.execute(sa.text(f'CREATE DATABASE "{database}" OWNER "{role}"'))
    url = make_url(pg_admin_url).set(database=database, username=role).render_as_string(hide_password=False)
    try:
        with caplog.at_level("WARNING"):
            upgrade("head", url)
        assert "CREATE EXTENSION vector failed" in caplog.text or "not installed on this server" in caplog.text
        engine = get_engine(url)
        with engine.connect() as conn:
            assert not vector_installed(conn)
            indexes = {i["name"] for i in sa.inspect(conn).get_indexes("clip_embeddings")}
        assert "ix_clip_embeddings_model" in indexes and not any("hnsw" in i for i in indexes)
        refs = folder_of(tmp_path, SAMPLES[:1])
        specs = prepare_scorers([ScorerSpec("embedding", {"clip": {"model": tiny_clip[32], "pretrained": None}})],
                                refs)
        assert [o.status for o in run_shard(engine, refs, specs).outcomes] == ["scored"]
        assert len(stored(engine)) == 1
        # What needs pgvector says so, and how to add it.
        from vidqa.curation.dedup import deduplicate
        from vidqa.curation.search import search_text
        from vidqa.db.embeddings import VectorMissing

        with pytest.raises(VectorMissing, match="vidqa dedup needs pgvector.*CREATE EXTENSION vector"):
            deduplicate(engine)
        with pytest.raises(VectorMissing, match="vidqa search needs pgvector"):
            search_text(engine, "a dog")
        with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match="vidqa_search needs the pgvector"):
            conn.execute(sa.text("SELECT * FROM vidqa_search((SELECT embedding FROM clip_embeddings LIMIT 1))"))
        engine.dispose()
    finally:
        from vidqa.db.engine import _engine_for

        _engine_for(url).dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def test_pooling_is_the_unit_mean_direction_and_says_when_there_is_none():
    from vidqa.metrics.pooling import pooled_embedding

    frames = np.random.default_rng(2).normal(size=(7, 16)) * np.arange(1, 8)[:, None]  # unequal norms
    units = frames / np.linalg.norm(frames, axis=1, keepdims=True)
    assert np.abs(pooled_embedding(frames) - units.sum(0) / np.linalg.norm(units.sum(0))).max() < 1e-12
    with pytest.raises(ValueError, match="no direction"):
        pooled_embedding(np.array([[1.0, 2.0], [-2.0, -4.0]]))


def test_storing_can_be_turned_off(tiny_clip, tmp_path, migrated_db, monkeypatch):
    from vidqa.config import reload_settings

    monkeypatch.setenv("VIDQA_STORE_EMBEDDINGS", "0")
    reload_settings()
    refs = folder_of(tmp_path, SAMPLES[:1])
    specs = prepare_scorers([ScorerSpec("embedding", {"clip": {"model": tiny_clip[32], "pretrained": None}})], refs)
    engine = get_engine(migrated_db)
    assert [o.status for o in run_shard(engine, refs, specs).outcomes] == ["scored"]
    assert stored(engine) == []
