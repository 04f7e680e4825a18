"""CLIP-family scorers through the real pipeline and ledger, on tiny random open_clip models
built from real configs; numbers checked against independent float64 numpy."""

import json
import math
from collections import Counter

import numpy as np
import pytest
import sqlalchemy as sa
import torch

from conftest import SHARED, VIDEOS
from vidqa.db import get_engine
from vidqa.models.clip_model import encode_images, encode_text_tokens, encode_texts, load_clip
from vidqa.scoring.job import ScorerSpec
from vidqa.scoring.shard import prepare_scorers
from conftest import run_shard
from vidqa.video.probe import probe_video
from vidqa.storage import Storage

BFYP = VIDEOS / "Bfyp0C02sko_000248_000258.mp4"
CANDIDATE = "A person is frying a pan of eggs that are colored pink and green."
REFERENCE = "Two egg yolks are placed in food flavored white yolk on a pan until they are cooked."


def rows_by(conn, sql, **params):
    return conn.execute(sa.text(sql), params).all()


def write_manifest(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return str(path)


def numpy_idf(docs):
    m = len(docs)
    df = Counter(t for d in docs for t in set(d))
    idf = {t: math.log((m + 1) / (n + 1)) for t, n in df.items()}
    eos_idf = sum(idf.values()) / len(idf)
    return idf, math.log(m + 1), eos_idf


def test_emscore_through_the_pipeline_matches_float64_numpy(tiny_clip, tmp_path, migrated_db):
    spec = {"clip": {"model": tiny_clip[32], "pretrained": None},
            "sampling": {"method": "every_n_seconds", "seconds": 2.0}}
    counter = str(VIDEOS / "counter.mp4")
    manifest = write_manifest(tmp_path / "m.jsonl", [
        {"video_path": str(BFYP), "candidate": CANDIDATE, "reference": REFERENCE},
        {"video_path": counter, "candidate": "numbers counting up", "reference": ["a counter", "digits on a screen"]},
        {"video_path": str(VIDEOS / "fades.mp4"), "candidate": "a picture fades to black"},  # reference-free
    ])
    refs = Storage().list_videos(manifest)
    (prepared,) = prepare_scorers([ScorerSpec("emscore", spec)], refs)
    corpus = prepared.context["idf_corpus"]
    assert sorted(corpus) == sorted([REFERENCE, "a counter", "digits on a screen"])  # references, not candidates

    engine = get_engine(migrated_db)
    result = run_shard(engine, refs, [prepared], None)
    assert [o.status for o in result.outcomes] == ["scored"] * 3
    with engine.connect() as conn:
        stored = {(uri, metric): (value, details) for uri, metric, value, details in rows_by(conn, """
            SELECT v.uri, s.metric, s.value, s.details FROM scores s JOIN clips c ON c.id = s.clip_id
            JOIN videos v ON v.id = c.video_id WHERE s.scorer = 'emscore'""")}
        inputs = dict(rows_by(conn, "SELECT input_hash, inputs FROM score_inputs"))
    per_video = Counter(uri for uri, _ in stored)
    assert per_video == {str(BFYP): 21, counter: 21, str(VIDEOS / "fades.mp4"): 7}
    assert {i["candidate"] for i in inputs.values()} == {CANDIDATE, "numbers counting up", "a picture fades to black"}

    # Independent float64 computation for the counter row (two references).
    clip = load_clip(tiny_clip[32], None)
    frames_used = stored[(counter, "EMScore(X,V)_figr_P")][1]["frame_indices"]
    from vidqa.video.decode import decode_frames
    frames = decode_frames(counter, probe_video(counter), frames_used)
    v = encode_images(clip, frames.array).double().numpy()
    texts = ["numbers counting up", "a counter", "digits on a screen"]
    enc = encode_text_tokens(clip, texts)
    tok = [enc.token_embeddings[i][enc.mask[i]].double().numpy() for i in range(3)]
    ids = [enc.token_ids[i][enc.mask[i]].tolist() for i in range(3)]
    glob = enc.global_embeddings.double().numpy()
    # The reference code's documents: each tokenized row as padded to the 77-token context,
    # so the padding id 0 is in every one (tests/test_emscore_idf.py checks the table itself).
    corpus_ids = [encode_text_tokens(clip, [t]).token_ids[0].tolist() for t in corpus]
    idf, unseen, eos_idf = numpy_idf(corpus_ids)
    assert idf[0] == 0.0
    eos = ids[0][-1]

    def weights(seq):
        w = np.array([eos_idf if t == eos else idf.get(t, unseen) for t in seq])
        return w / w.sum()

    def prf(x, wx, y, wy=None):
        sim = x @ y.T
        p = float((wx * sim.max(axis=1)).sum())
        r = float(sim.max(axis=0).mean()) if wy is None else float((wy * sim.max(axis=0)).sum())
        return p, r, 2 * p * r / (p + r)

    p_v, r_v, f_v = prf(tok[0], weights(ids[0]), v)
    vmean = v.mean(axis=0)
    cogr_v = float(glob[0] @ (vmean / np.linalg.norm(vmean)))
    ref_scores = [prf(tok[0], weights(ids[0]), tok[k], weights(ids[k])) for k in (1, 2)]
    p_r, r_r, f_r = (max(s[i] for s in ref_scores) for i in range(3))
    cogr_r = max(float(glob[0] @ glob[k]) for k in (1, 2))
    expected = {
        "EMScore(X,V)_figr_P": p_v, "EMScore(X,V)_figr_R": r_v, "EMScore(X,V)_figr_F": f_v,
        "EMScore(X,V)_cogr": cogr_v, "EMScore(X,V)_full_F": (f_v + cogr_v) / 2,
        "EMScore(X,X*)_figr_P": p_r, "EMScore(X,X*)_figr_R": r_r, "EMScore(X,X*)_cogr": cogr_r,
        "EMScore(X,V,X*)_figr_F": (f_v + f_r) / 2, "EMScore(X,V,X*)_cogr": (cogr_v + cogr_r) / 2,
        "EMScore(X,V,X*)_full_P": ((p_v + p_r) / 2 + (cogr_v + cogr_r) / 2) / 2,
    }
    for metric, value in expected.items():
        assert stored[(counter, metric)][0] == pytest.approx(value, abs=1e-5), metric


def test_identical_candidate_and_reference_score_one(tiny_clip, tmp_path, migrated_db):
    rows = [{"video_path": str(BFYP), "candidate": REFERENCE, "reference": REFERENCE},
            {"video_path": str(VIDEOS / "counter.mp4"), "candidate": "a counter", "reference": "a counter"}]
    refs = Storage().list_videos(write_manifest(tmp_path / "m.jsonl", rows))
    spec = ScorerSpec("emscore", {"clip": {"model": tiny_clip[32], "pretrained": None},
                                  "sampling": {"method": "every_n_frames", "step": 50},
                                  "score_types": ["EMScore(X,X*)"]})
    engine = get_engine(migrated_db)
    run_shard(engine, refs, prepare_scorers([spec], refs), None)
    with engine.connect() as conn:
        values = dict(rows_by(conn, "SELECT metric, value FROM scores s JOIN clips c ON c.id = s.clip_id "
                                    "JOIN videos v ON v.id = c.video_id WHERE v.uri = :u", u=str(BFYP)))
    assert set(values) == {f"EMScore(X,X*)_{m}" for m in
                           ("figr_P", "figr_R", "figr_F", "cogr", "full_P", "full_R", "full_F")}
    for metric in ("figr_P", "figr_R", "figr_F", "cogr", "full_F"):
        assert values[f"EMScore(X,X*)_{metric}"] == pytest.approx(1.0, abs=1e-6)


def test_changed_caption_is_scored_again_and_unchanged_is_not(tiny_clip, tmp_path, migrated_db):
    spec = ScorerSpec("emscore", {"clip": {"model": tiny_clip[32], "pretrained": None}, "idf": False,
                                  "sampling": {"method": "every_n_seconds", "seconds": 5.0}})
    engine = get_engine(migrated_db)
    m1 = Storage().list_videos(write_manifest(tmp_path / "a.jsonl", [{"video_path": str(BFYP), "candidate": CANDIDATE}]))
    assert run_shard(engine, m1, [spec], None).outcomes[0].status == "scored"
    assert run_shard(engine, m1, [spec], None).outcomes[0].status == "skipped"
    m2 = Storage().list_videos(write_manifest(tmp_path / "b.jsonl", [{"video_path": str(BFYP), "candidate": "eggs"}]))
    assert run_shard(engine, m2, [spec], None).outcomes[0].status == "scored"
    with engine.connect() as conn:
        by_input = rows_by(conn, "SELECT i.inputs->>'candidate', count(*) FROM scores s "
                                 "JOIN score_inputs i USING (input_hash) GROUP BY 1")
    assert dict(by_input) == {CANDIDATE: 7, "eggs": 7}  # both captions kept, nothing overwritten


def test_missing_caption_is_a_scorer_failure_not_a_video_failure(tiny_clip, tmp_path, migrated_db):
    refs = Storage().list_videos(write_manifest(tmp_path / "m.jsonl", [{"video_path": str(BFYP), "prompt": "x"}]))
    specs = [ScorerSpec("emscore", {"clip": {"model": tiny_clip[32], "pretrained": None}, "idf": False}),
             ScorerSpec("technical", {"sampling": {"n": 2}})]
    engine = get_engine(migrated_db)
    (outcome,) = run_shard(engine, refs, specs, None).outcomes
    assert outcome.status == "scored" and outcome.scores_written == 7  # technical only
    with engine.connect() as conn:
        assert rows_by(conn, "SELECT scorer, reason FROM scorer_failures") == [("emscore", "no 'candidate' text to score")]


def test_text_video_similarity_equals_numpy_cosines(tiny_clip, tmp_path, migrated_db):
    prompt = "Near the Elephant Gate village, they approach the haunted house at night."
    video = str(VIDEOS / "videoscore_video1.mp4")
    refs = Storage().list_videos(write_manifest(tmp_path / "m.jsonl", [{"video_path": video, "prompt": prompt}]))
    engine = get_engine(migrated_db)
    specs = [ScorerSpec("text_video", {"clip": {"model": tiny_clip[32], "pretrained": None}, "reduce": reduce,
                                       "flip": flip, "sampling": {"method": "uniform", "n": 4}})
             for reduce, flip in (("avg", "none"), ("min", "horizontal"))]
    run_shard(engine, refs, specs, None)
    with engine.connect() as conn:
        stored = rows_by(conn, "SELECT s.value, s.details FROM scores s JOIN scorer_configs c USING (config_hash) "
                               "ORDER BY c.config->'config'->>'flip'")
    clip = load_clip(tiny_clip[32], None)
    from vidqa.video.decode import decode_frames
    frames = decode_frames(video, probe_video(video), stored[0][1]["frame_indices"]).array
    text = encode_texts(clip, [prompt]).double().numpy()[0]
    plain = encode_images(clip, frames).double().numpy() @ text
    flipped = encode_images(clip, np.ascontiguousarray(frames[:, :, ::-1])).double().numpy() @ text
    (v_flip, d_flip), (v_none, d_none) = stored  # "horizontal" sorts before "none"
    assert v_none == pytest.approx(plain.mean(), abs=1e-5)
    assert v_flip == pytest.approx(min(plain.min(), flipped.min()), abs=1e-5)
    assert len(d_flip["frame_sims"]) == 2 * len(plain)


def test_aesthetic_scorer_uses_the_real_laion_heads(tiny_clip, migrated_db, monkeypatch):
    """The real checkpoints, strictly loaded, applied to frame embeddings (random tiny CLIP):
    checked against a float64 numpy forward pass of the same state dict."""
    monkeypatch.setenv("VIDQA_MODELS_DIR", str(SHARED / "models"))
    video = str(VIDEOS / "videoscore_video1.mp4")
    refs = Storage().list_videos(video)
    engine = get_engine(migrated_db)
    spec = ScorerSpec("aesthetic", {"clip": {"model": tiny_clip[768], "pretrained": None}})
    run_shard(engine, refs, [spec], None)
    with engine.connect() as conn:
        ((value, details),) = rows_by(conn, "SELECT value, details FROM scores WHERE metric = 'aesthetic'")
    assert details["frames"] == 3  # 10%, 50%, 90%
    from vidqa.video.decode import decode_frames
    frames = decode_frames(video, probe_video(video), details["frame_indices"]).array
    e = encode_images(load_clip(tiny_clip[768], None), frames).double().numpy()
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    sd = torch.load(SHARED / "models/laion-aesthetic/sac+logos+ava1-l14-linearMSE.pth", map_location="cpu")
    x = e
    for i in (0, 2, 4, 6, 7):  # no activations between the layers
        x = x @ sd[f"layers.{i}.weight"].double().numpy().T + sd[f"layers.{i}.bias"].double().numpy()
    assert value == pytest.approx(float(x[:, 0].mean()), abs=1e-6)
    assert details["frame_scores"] == pytest.approx(list(x[:, 0]), abs=1e-6)


def test_aesthetic_head_and_clip_must_agree(tiny_clip, monkeypatch):
    from vidqa.errors import ScorerError
    from vidqa.scorers import build_scorer

    monkeypatch.setenv("VIDQA_MODELS_DIR", str(SHARED / "models"))
    with pytest.raises(ScorerError, match="takes 768-d embeddings"):
        build_scorer("aesthetic", {"clip": {"model": tiny_clip[32], "pretrained": None}}).config_hash
    with pytest.raises(ScorerError, match="takes 512-d embeddings"):
        build_scorer("aesthetic", {"clip": {"model": tiny_clip[32], "pretrained": None},
                                   "head": str(SHARED / "models/laion-aesthetic/sa_0_4_vit_b_32_linear.pth")}).config_hash


def test_scorers_on_one_clip_model_and_sampling_encode_the_frames_once(tiny_clip, tmp_path, migrated_db,
                                                                          monkeypatch, encoded_frames):
    """EMScore and aesthetic on the same CLIP at the same sampling share the clip's decoded
    frames and so their embeddings: the encoder sees each frame once, and each scorer's values
    are those it gives alone (checked against a float64 numpy forward pass of the head)."""
    monkeypatch.setenv("VIDQA_MODELS_DIR", str(SHARED / "models"))
    encoded = encoded_frames
    clip = {"model": tiny_clip[768], "pretrained": None}
    sampling = {"method": "fractions", "fractions": [0.1, 0.5, 0.9]}
    specs = [ScorerSpec("emscore", {"clip": clip, "sampling": sampling, "idf": False}),
             ScorerSpec("aesthetic", {"clip": clip, "sampling": sampling})]
    videos = [VIDEOS / "videoscore_video1.mp4", VIDEOS / "fades.mp4"]
    rows = [{"video_path": str(v), "candidate": CANDIDATE} for v in videos]
    manifest = write_manifest(tmp_path / "m.jsonl", rows)
    refs = Storage().list_videos(manifest)
    engine = get_engine(migrated_db)
    run_shard(engine, refs, prepare_scorers(specs, refs))
    assert sum(encoded) == 3 * len(videos)  # three frames per video, encoded for both scorers at once
    with engine.connect() as conn:
        stored = rows_by(conn, "SELECT v.uri, s.details FROM scores s JOIN clips c ON c.id = s.clip_id "
                               "JOIN videos v ON v.id = c.video_id WHERE s.metric = 'aesthetic' ORDER BY 1")
    sd = torch.load(SHARED / "models/laion-aesthetic/sac+logos+ava1-l14-linearMSE.pth", map_location="cpu")
    model = load_clip(tiny_clip[768], None)
    from vidqa.video.decode import decode_frames
    for uri, details in stored:
        frames = decode_frames(uri, probe_video(uri), details["frame_indices"]).array
        x = encode_images(model, frames).double().numpy()
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        for i in (0, 2, 4, 6, 7):
            x = x @ sd[f"layers.{i}.weight"].double().numpy().T + sd[f"layers.{i}.bias"].double().numpy()
        assert details["frame_scores"] == pytest.approx(list(x[:, 0]), abs=1e-5)
