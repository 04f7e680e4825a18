"""VideoScore: tiny random Idefics2 and Qwen2-VL checkpoints built offline (videoscore_fixtures),
loaded through the real factory, run on the model card's example video with its prompt."""

import json
import math
import re

import numpy as np
import pytest
import sqlalchemy as sa
import torch

from conftest import SHARED, VIDEOS, vidqa_cli
from videoscore_fixtures import build_idefics2_checkpoint, build_qwen2_vl_checkpoint
from vidqa.db import get_engine
from vidqa.errors import ScorerError
from vidqa.video.decode import decode_frames
from vidqa.models.videoscore import (
    ASPECTS, QWEN_VIDEO_TOTAL_PIXELS, REGRESSION_QUERY_PROMPT, last_token_indices, load_videoscore, qwen_frame_size, run_halving_on_oom,
)
from vidqa.scoring.job import ScorerSpec
from conftest import run_shard
from vidqa.video.probe import probe_video
from vidqa.video.sampling import linspace_positions
from vidqa.scorers import build_scorer
from vidqa.scorers.base import ScoreItem
from vidqa.storage import Storage

VIDEO1 = str(VIDEOS / "videoscore_video1.mp4")
# The prompt of videoscore_video1.mp4, from ../shared/videos/README.md.
PROMPT = ("Near the Elephant Gate village, they approach the haunted house at night. Rajiv feels anxious, but "
          "Bhavesh encourages him. As they reach the house, a mysterious sound in the air adds to the suspense.")
# Toy frame sizes keep the test quick.
QWEN_PIXELS = {"min_pixels": 28 * 28 * 4, "max_pixels": 28 * 28 * 16, "total_pixels": QWEN_VIDEO_TOTAL_PIXELS}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("videoscore")
    return {
        "idefics2": (root / "idefics2", build_idefics2_checkpoint(root / "idefics2")),
        "qwen2_vl": (root / "qwen2_vl", build_qwen2_vl_checkpoint(root / "qwen2_vl")),
    }


def readme_prompt() -> str:
    text = (VIDEOS / "README.md").read_text()
    return re.search(r"Prompt for `videoscore_video1.mp4`.*?\n`([^`]+)`", text, re.S).group(1)


def test_prompt_is_the_model_cards():
    assert readme_prompt() == PROMPT
    card = (SHARED / "seeds" / "videoscore_model_card.md").read_text()
    published = re.search(r'REGRESSION_QUERY_PROMPT = """(.*?)"""', card, re.S).group(1)
    assert " ".join(REGRESSION_QUERY_PROMPT.split()) == " ".join(published.split())
    assert "sub-score, \nthe lowest" in REGRESSION_QUERY_PROMPT  # the trained-on trailing space
    assert REGRESSION_QUERY_PROMPT.endswith("all the frames of video are as follows:\n")


def manual_idefics2(module, processor, frames, prompt):
    """The head by hand: backbone hidden state of the last token, through score."""
    text = REGRESSION_QUERY_PROMPT.format(text_prompt=prompt) + "<image> " * len(frames)
    from PIL import Image
    inputs = processor(text=[text], images=[[Image.fromarray(f) for f in frames]], return_tensors="pt")
    with torch.no_grad():
        hidden = module.model(**inputs).last_hidden_state
        return module.score(hidden[0, -1]).double().numpy(), inputs


def test_idefics2_checkpoint_scores_video1_as_a_manual_forward(checkpoints):
    folder, written = checkpoints["idefics2"]
    scorer = build_scorer("videoscore", {"model": str(folder)}).setup()
    probe = probe_video(VIDEO1)
    assert probe.frame_count == 24
    (result,) = scorer.score([ScoreItem(uri=VIDEO1, probe=probe, frames=scorer.sampling.sample(VIDEO1, probe),
                                        fields={"prompt": PROMPT})])
    assert list(result) == list(ASPECTS)  # the documented order
    values = np.array([result[a].value for a in ASPECTS])
    assert np.isfinite(values).all()

    positions = np.linspace(0, 23, 16).astype(int)  # the reference's frame rule
    assert result["visual_quality"].details["frame_positions"] == positions.tolist()
    frames = decode_frames(VIDEO1, probe, np.unique(positions)).array
    repeated = frames[np.searchsorted(np.unique(positions), positions)]
    expected, inputs = manual_idefics2(written, scorer.model.processor, repeated, PROMPT)
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-5)
    image_id = scorer.model.processor.tokenizer.convert_tokens_to_ids("<image>")
    assert int((inputs["input_ids"] == image_id).sum()) == 16 * 4  # 16 frames x image_seq_len latents


def test_pooled_token_is_the_last_non_padding_token_in_a_padded_batch(checkpoints):
    folder, written = checkpoints["idefics2"]
    model = load_videoscore(str(folder))
    # The published scores were made with the PIL image processor (its bilinear resampling).
    assert type(model.processor.image_processor).__name__ == "Idefics2ImageProcessorPil"
    probe = probe_video(VIDEO1)
    frames = decode_frames(VIDEO1, probe, np.arange(0, 24, 6)).array
    prompts = [PROMPT, "night"]
    inputs = model.inputs([frames, frames], prompts)
    mask = inputs["attention_mask"]
    lengths = mask.sum(1)
    assert lengths[0] > lengths[1] and mask[1, -1] == 0  # the short row is right-padded
    assert last_token_indices(mask).tolist() == (lengths - 1).tolist()
    batch = model.forward(inputs).double().numpy()
    with torch.no_grad():
        hidden = written.model(**inputs).last_hidden_state
        at_last = written.score(hidden[1, int(lengths[1]) - 1]).double().numpy()
        at_pad = written.score(hidden[1, -1]).double().numpy()
    np.testing.assert_allclose(batch[1], at_last, rtol=1e-5, atol=1e-5)
    assert np.abs(batch[1] - at_pad).max() > 1e-3  # the padding position would give another answer
    singles = np.stack([model.score([frames], [p]).double().numpy()[0] for p in prompts])
    np.testing.assert_allclose(batch, singles, rtol=1e-4, atol=1e-4)  # padding changes nothing


def test_qwen2_vl_checkpoint_scores_video1_as_a_manual_forward(checkpoints):
    folder, written = checkpoints["qwen2_vl"]
    scorer = build_scorer("videoscore", {"model": str(folder), **QWEN_PIXELS}).setup()
    probe = probe_video(VIDEO1)
    frames = scorer.sampling.sample(VIDEO1, probe)
    (result,) = scorer.score([ScoreItem(uri=VIDEO1, probe=probe, frames=frames, fields={"prompt": PROMPT})])
    values = np.array([result[a].value for a in ASPECTS])
    assert np.isfinite(values).all()
    # 3 s at 8 frames per second: all 24 frames (qwen-vl-utils' rule).
    assert result["dynamic_degree"].details["frame_positions"] == list(range(24))

    model = scorer.model
    inputs = model.inputs([frames.array], [PROMPT], **QWEN_PIXELS)
    t, h, w = inputs["video_grid_thw"][0].tolist()
    assert t == 12  # frames go in pairs
    size = qwen_frame_size(640, 768, 24, **QWEN_PIXELS)
    assert (h * 14, w * 14) == size
    with torch.no_grad():
        hidden = written.model(**inputs).last_hidden_state
        expected = written.score(hidden[0, -1]).double().numpy()
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-5)
    text = model.processor.tokenizer.decode(inputs["input_ids"][0])
    assert text.startswith("<|im_start|>user\n<|vision_start|><|video_pad|>") and PROMPT in text

    batch = model.score([frames.array[:8]] * 2, [PROMPT, "night"], batch_size=2, **QWEN_PIXELS).double().numpy()
    singles = np.stack([model.score([frames.array[:8]], [p], **QWEN_PIXELS).double().numpy()[0]
                        for p in (PROMPT, "night")])
    np.testing.assert_allclose(batch, singles, rtol=1e-4, atol=1e-4)


def test_strict_loading_fails_loudly_without_the_head(tmp_path):
    build_idefics2_checkpoint(tmp_path / "idefics2", drop_head=True)
    with pytest.raises(ScorerError, match=r"no regression head 'score'") as err:
        load_videoscore(str(tmp_path / "idefics2"))
    assert "score.weight" in str(err.value) and "score.bias" in str(err.value)
    build_qwen2_vl_checkpoint(tmp_path / "qwen", drop_head=True)
    with pytest.raises(ScorerError, match=r"no regression head 'score'"):
        load_videoscore(str(tmp_path / "qwen"))


def test_frames_flag_sets_max_frames_and_sampling_cannot_be_set():
    from pydantic import ValidationError

    from vidqa.cli.params import build_params
    from vidqa.scorers.videoscore import VideoScoreConfig

    params = build_params("-", {}, scorers="technical,videoscore", frames=8, videoscore_model="/m")
    assert params.videoscore.max_frames == 8 and params.videoscore.model == "/m"
    assert params.technical.sampling.n == 8 and params.videoscore.sampling.method == "uniform"
    with pytest.raises(ValidationError, match="set max_frames instead"):
        VideoScoreConfig(sampling={"method": "uniform", "n": 4})


def test_missing_weights_offline_name_the_download(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDQA_MODELS_DIR", str(tmp_path / "models"))
    for model in ("TIGER-Lab/VideoScore-v1.1", "TIGER-Lab/VideoScore-Qwen2-VL"):
        with pytest.raises(ScorerError) as err:
            load_videoscore(model)
        message = str(err.value)
        assert f"VideoScore model {model!r} is not available offline" in message
        assert f"hf download {model} --local-dir {tmp_path / 'models' / 'hf-hub' / model}" in message


def test_frame_rules_match_the_references_formulas():
    # Idefics2 checkpoints: np.linspace(0, n-1, num_frames) truncated, repeats when short.
    for name, n in (("videoscore_video1.mp4", 16), ("videoscore_video1.mp4", 48), ("video_90.mov", 16)):
        probe = probe_video(str(VIDEOS / name))
        got = linspace_positions(probe, n)
        assert got.tolist() == np.linspace(0, probe.frame_count - 1, n).astype(int).tolist()
    # Qwen2-VL: qwen-vl-utils' smart_nframes at fps 8, then linspace rounded.
    for name in ("videoscore_video1.mp4", "counter.mp4", "flipping_a_pancake.mkv", "goldeneye-vfr-drop3.mp4",
                 "video_90.mov", "fades.mp4"):
        probe = probe_video(str(VIDEOS / name))
        total, avg_fps = probe.frame_count, probe.frame_count / probe.duration_s
        nframes = total / avg_fps * 8.0
        nframes = min(min(max(nframes, 4), math.floor(min(768, total) / 2) * 2), total)
        nframes = max(math.floor(nframes / 2) * 2, 2)
        expected = torch.linspace(0, total - 1, nframes).round().long().tolist()
        got = linspace_positions(probe, 768, fps=8.0, rounding="nearest", multiple=2, min_frames=4)
        assert got.tolist() == expected, name


def test_qwen_frame_size_agrees_with_transformers_smart_resize():
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w, n = int(rng.integers(30, 2200)), int(rng.integers(30, 2200)), int(rng.integers(2, 400))
        budget = max(min(768 * 28 * 28, 24576 * 28 * 28 / n * 2), int(128 * 28 * 28 * 1.05))
        assert qwen_frame_size(h, w, n) == tuple(smart_resize(h, w, 28, 128 * 28 * 28, budget))


def test_out_of_memory_halves_the_batch_and_keeps_order():
    seen = []

    def forward(rows):
        seen.append(len(rows))
        if len(rows) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return torch.tensor([[float(r)] * 5 for r in rows])

    out = run_halving_on_oom(forward, list(range(7)))
    assert out[:, 0].tolist() == list(range(7))
    assert seen == [7, 3, 1, 2, 4, 2, 2]  # 7 fails; 3 fails (1 + 2 pass); 4 fails (2 + 2 pass)
    with pytest.raises(ValueError):
        run_halving_on_oom(lambda rows: (_ for _ in ()).throw(ValueError("shape")), [1, 2])


def test_run_stores_five_aspects_fails_only_videoscore_without_prompt_and_resumes(
        checkpoints, tmp_path, migrated_db, prefect_api_url):
    folder, _ = checkpoints["idefics2"]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in (
        {"video_path": VIDEO1, "prompt": PROMPT},
        {"video_path": str(VIDEOS / "video_90.mov"), "prompt": "a short rotated clip"},  # 3 frames
        {"video_path": str(VIDEOS / "counter.mp4")},  # no prompt
    )) + "\n")
    env = {"VIDQA_DATABASE_URL": migrated_db, "PREFECT_API_URL": prefect_api_url, "COLUMNS": "400"}
    args = ("run", str(manifest), "--scorers", "technical,videoscore", "--videoscore-model", str(folder))
    vidqa_cli(*args, env=env)
    engine = get_engine(migrated_db)

    def state():
        with engine.connect() as conn:
            scores = conn.execute(sa.text(
                "SELECT v.uri, s.scorer, s.metric, s.value, s.details FROM scores s JOIN clips c ON c.id = s.clip_id "
                "JOIN videos v ON v.id = c.video_id ORDER BY s.id")).all()
            failures = conn.execute(sa.text(
                "SELECT v.uri, f.scorer, f.reason FROM scorer_failures f JOIN clips c ON c.id = f.clip_id "
                "JOIN videos v ON v.id = c.video_id")).all()
        return scores, failures

    scores, failures = state()
    by_video = {}
    for uri, scorer, metric, value, details in scores:
        if scorer == "videoscore":
            by_video.setdefault(uri.rsplit("/", 1)[-1], {})[metric] = (value, details)
    assert sorted(by_video) == ["video_90.mov", "videoscore_video1.mp4"]
    for metrics in by_video.values():
        assert list(metrics) == list(ASPECTS) and all(math.isfinite(v) for v, _ in metrics.values())
    # 3 frames give 16 positions: each frame repeated, as np.linspace(0, 2, 16) does.
    assert by_video["video_90.mov"]["visual_quality"][1]["frame_positions"] == np.linspace(0, 2, 16).astype(int).tolist()
    assert [(u.rsplit("/", 1)[-1], s) for u, s, _ in failures] == [("counter.mp4", "videoscore")]
    assert "'prompt'" in failures[0][2]
    assert {u.rsplit("/", 1)[-1] for u, s, *_ in scores if s == "technical"} == {
        "videoscore_video1.mp4", "video_90.mov", "counter.mp4"}

    with engine.connect() as conn:
        wide = conn.execute(sa.text(
            "SELECT visual_quality, factual_consistency FROM video_scores_wide WHERE uri LIKE '%videoscore_video1.mp4'"
        )).one()
    assert wide == (by_video["videoscore_video1.mp4"]["visual_quality"][0],
                    by_video["videoscore_video1.mp4"]["factual_consistency"][0])

    vidqa_cli(*args, env=env)  # a rerun scores nothing again and duplicates nothing
    assert state() == (scores, failures)


def test_library_shard_scores_qwen_on_a_three_frame_video(checkpoints, tmp_path, migrated_db):
    folder, _ = checkpoints["qwen2_vl"]
    video = str(VIDEOS / "video_90.mov")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"video_path": video, "prompt": PROMPT}) + "\n")
    refs = Storage().list_videos(str(manifest))
    (outcome,) = run_shard(get_engine(migrated_db), refs,
                             [ScorerSpec("videoscore", {"model": str(folder), **QWEN_PIXELS})], None).outcomes
    assert outcome.status == "scored" and outcome.scores_written == 5
    with get_engine(migrated_db).connect() as conn:
        details = conn.execute(sa.text("SELECT details FROM scores LIMIT 1")).scalar()
    assert details["frame_positions"] == [0, 2]  # qwen-vl-utils: an even count, at most the 3 frames there are
