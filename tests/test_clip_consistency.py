"""CLIP temporal consistency (scorer ``clip_consistency``): VBench's background consistency
and the mean adjacent cosine, from the embeddings EMScore's encoder pass already made."""

import json

import numpy as np
import pytest
import sqlalchemy as sa
import torch
import torch.nn.functional as F

from conftest import VIDEOS, run_ffmpeg, run_shard
from vidqa.db import get_engine
from vidqa.models.clip_model import encode_images, load_clip
from vidqa.scoring.job import ScorerSpec
from vidqa.scoring.shard import prepare_scorers
from vidqa.storage import Storage
from vidqa.video.decode import decode_frames
from vidqa.video.probe import probe_video


def vbench_background_consistency(features: torch.Tensor) -> float:
    """VBench's per-video loop (``vbench/background_consistency.py``), written again."""
    features = F.normalize(features, dim=-1, p=2)
    total, first, previous = 0.0, None, None
    for i in range(len(features)):
        feature = features[i].unsqueeze(0)
        if i == 0:
            first = feature
        else:
            to_previous = max(0.0, F.cosine_similarity(previous, feature).item())
            to_first = max(0.0, F.cosine_similarity(first, feature).item())
            total += (to_previous + to_first) / 2
        previous = feature
    return total / (len(features) - 1) if len(features) > 1 else 1.0


def test_consistency_shares_emscores_embeddings_and_equals_vbench(tiny_clip, tmp_path, migrated_db, encoded_frames):
    encoded = encoded_frames
    clip = {"model": tiny_clip[32], "pretrained": None}
    still = tmp_path / "still.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "smptebars=s=160x120:r=5:d=3", "-c:v", "libx264", str(still))
    videos = [VIDEOS / "Bfyp0C02sko_000248_000258.mp4", VIDEOS / "fades.mp4", still]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"video_path": str(v), "candidate": "a video"}) + "\n" for v in videos))
    refs = Storage().list_videos(str(manifest))
    specs = [ScorerSpec("emscore", {"clip": clip, "idf": False}), ScorerSpec("clip_consistency", {"clip": clip})]
    engine = get_engine(migrated_db)
    run_shard(engine, refs, prepare_scorers(specs, refs))
    with engine.connect() as conn:
        stored = conn.execute(sa.text(
            "SELECT v.uri, s.metric, s.value, s.details FROM scores s JOIN clips c ON c.id = s.clip_id "
            "JOIN videos v ON v.id = c.video_id WHERE s.metric LIKE 'clip_%'")).all()
    frames_per_video = {uri: details["frame_indices"] for uri, _, _, details in stored}
    # One encoder pass over each video's frames serves both scorers (EMScore's defaults: 1 per second).
    assert sum(encoded) == sum(len(i) for i in frames_per_video.values())
    model = load_clip(tiny_clip[32], None)
    values = {(uri, metric): value for uri, metric, value, _ in stored}
    for uri, indices in frames_per_video.items():
        features = encode_images(model, decode_frames(uri, probe_video(uri), indices).array).double()
        assert values[(uri, "clip_background_consistency")] == pytest.approx(
            vbench_background_consistency(features), abs=1e-6)
        unit = features.numpy() / np.linalg.norm(features.numpy(), axis=1, keepdims=True)
        assert values[(uri, "clip_adjacent_similarity")] == pytest.approx(
            float(np.mean(np.sum(unit[:-1] * unit[1:], axis=1))), abs=1e-6)
    # A still picture looks the same to the encoder in every frame.
    assert values[(str(still), "clip_adjacent_similarity")] == pytest.approx(1.0, abs=1e-5)


def test_one_frame_has_no_consistency(tiny_clip):
    from vidqa.scorers import build_scorer
    from vidqa.scorers.base import ScoreItem

    path = str(VIDEOS / "video_90.mov")
    scorer = build_scorer("clip_consistency", {"clip": {"model": tiny_clip[32], "pretrained": None},
                                               "sampling": {"method": "uniform", "n": 1}}).setup()
    probe = probe_video(path)
    (out,) = scorer.score([ScoreItem(uri=path, probe=probe, frames=scorer.sampling.sample(path, probe))])
    assert out["clip_adjacent_similarity"].value is None
    assert "two frames" in out["clip_background_consistency"].details["undefined"]
