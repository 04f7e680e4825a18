"""Motion (scorer ``motion``): data-juicer's Farnebäck motion score, checked against its
published algorithm re-implemented over OpenCV's own video reader, and on synthetic videos
whose motion is known (still; a pan of k pixels per frame)."""

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import VIDEOS, run_ffmpeg
from vidqa.scorers import build_scorer
from vidqa.scorers.base import ScoreItem
from vidqa.video.probe import probe_video

FARNEBACK = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2, "flags": 0}


def data_juicer_motion(path: str, sampling_fps: float = 2.0, relative: bool = False) -> float:
    """``VideoMotionScoreFilter.compute_stats_single`` (modelscope/data-juicer), written again:
    OpenCV reads and seeks the video, BGR to gray, Farnebäck between consecutive sampled frames,
    ``cartToPolar`` magnitude, mean per pair, mean over pairs."""
    cap = cv2.VideoCapture(path)
    fps = cap.get(cv2.CAP_PROP_FPS)
    step = round(fps / min(sampling_fps, fps))
    step = max(min(step, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) - 1), 1)
    previous, position, scores = None, 0, []
    while cap.isOpened():
        ok, frame = cap.read()
        if not ok:
            break
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if previous is not None:
            flow = cv2.calcOpticalFlowFarneback(previous, gray, None, **FARNEBACK)
            magnitude, _ = cv2.cartToPolar(flow[..., 0], flow[..., 1])
            score = np.mean(magnitude)
            scores.append(score / np.hypot(*flow.shape[:2]) if relative else score)
        previous = gray
        position += step
        cap.set(cv2.CAP_PROP_POS_FRAMES, position)
    cap.release()
    return float(np.mean(scores))


def motion_of(path, **config) -> dict:
    scorer = build_scorer("motion", config).setup()
    probe = probe_video(str(path))
    frames = scorer.sampling.sample(str(path), probe)
    (out,) = scorer.score([ScoreItem(uri=str(path), probe=probe, frames=frames)])
    return out


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A still picture, and pans over a smooth random texture at 1 and 3 pixels per frame."""
    d = tmp_path_factory.mktemp("motion")
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (90, 500), dtype=np.uint8)
    texture = Image.fromarray(noise).resize((2000, 360), Image.BICUBIC).convert("RGB")
    texture.save(d / "texture.png")
    made = {"still": d / "still.mp4"}
    run_ffmpeg("-loop", "1", "-framerate", "25", "-i", str(d / "texture.png"), "-t", "4", "-vf", "crop=640:360:0:0",
               "-c:v", "libx264", "-crf", "8", "-pix_fmt", "yuv420p", str(made["still"]))
    for k in (1, 3):
        made[f"pan{k}"] = d / f"pan{k}.mp4"
        run_ffmpeg("-loop", "1", "-framerate", "25", "-i", str(d / "texture.png"), "-t", "4",
                   "-vf", f"crop=640:360:n*{k}:0", "-c:v", "libx264", "-crf", "8", "-pix_fmt", "yuv420p",
                   str(made[f"pan{k}"]))
    return made


@pytest.mark.parametrize("name", ["Bfyp0C02sko_000248_000258.mp4", "counter.mp4", "flipping_a_pancake.mkv",
                                  "issue-134-rotate.mp4"])
def test_motion_equals_data_juicers_algorithm(name):
    path = str(VIDEOS / name)
    ours = motion_of(path)
    assert ours["motion_mean"].value == pytest.approx(data_juicer_motion(path), rel=1e-6)
    relative = motion_of(path, relative=True)
    assert relative["motion_mean"].value == pytest.approx(data_juicer_motion(path, relative=True), rel=1e-6)


def test_a_still_video_does_not_move_and_a_pan_moves_by_its_speed(synthetic):
    still = motion_of(synthetic["still"])
    assert still["motion_mean"].value < 0.01 and still["motion_still_share"].value == 1.0
    for k in (1, 3):
        consecutive = motion_of(synthetic[f"pan{k}"], sampling={"method": "every_n_frames", "step": 1})
        assert consecutive["motion_mean"].value == pytest.approx(k, rel=0.1)
        assert consecutive["motion_still_share"].value == 0.0
    # At data-juicer's 2 frames per second a 25 fps pan moves round(25 / 2) = 12 frames per pair.
    default = motion_of(synthetic["pan1"])
    assert default["motion_mean"].value == pytest.approx(12, rel=0.1)
    assert default["motion_max"].value >= default["motion_mean"].value
    assert default["motion_mean"].details["pairs"] == 8


def test_one_frame_has_no_motion(tmp_path):
    path = tmp_path / "one.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=1:d=1", "-c:v", "libx264", str(path))
    out = motion_of(path)
    assert out["motion_mean"].value is None and "two frames" in out["motion_mean"].details["undefined"]


def test_the_run_flags_leave_motions_frames_alone():
    from vidqa.scorers.base import CliFlags
    from vidqa.scorers.motion import MotionConfig

    assert MotionConfig.flag_overrides(CliFlags(sampling={"method": "uniform", "n": 3}, frames=3)) == {}
    shrunk = MotionConfig.model_validate(MotionConfig.flag_overrides(CliFlags(max_size=320)))
    assert (shrunk.sampling.method, shrunk.sampling.fps, shrunk.sampling.max_size) == ("fps_step", 2.0, 320)


@pytest.fixture(scope="module")
def random_raft(tmp_path_factory):
    """raft_small with random weights (torchvision's architecture, seed 0), saved as a state dict."""
    import torch
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("raft") / "raft_small_random.pth"
    torch.save(raft_small(weights=None).state_dict(), path)
    return path


def test_raft_flow_is_torchvisions_model_on_its_preset(random_raft, synthetic):
    """The RAFT path against torchvision's own call (its OpticalFlow preset, 12 updates, the last
    prediction) on the same random weights; frames not a multiple of 8 are padded and cropped back."""
    import torch
    from torchvision.models.optical_flow import Raft_Small_Weights, raft_small

    from vidqa.models.raft import RaftWeights

    flow = RaftWeights("raft_small", str(random_raft)).load()
    reference = raft_small(weights=None)
    reference.load_state_dict(torch.load(random_raft, weights_only=True))
    reference.eval()
    preset = Raft_Small_Weights.C_T_V2.transforms()
    probe = probe_video(str(synthetic["pan3"]))
    frames = build_scorer("motion").sampling.sample(str(synthetic["pan3"]), probe).array[:3, :128, :200]
    ours = flow.flow(frames[:-1], frames[1:])
    a, b = preset(torch.from_numpy(frames[:-1]).permute(0, 3, 1, 2), torch.from_numpy(frames[1:]).permute(0, 3, 1, 2))
    with torch.inference_mode():
        expected = reference(a, b)[-1].permute(0, 2, 3, 1).numpy()
    assert ours.shape == expected.shape == (2, 128, 200, 2)
    assert np.abs(ours - expected).max() < 1e-4
    odd = flow.flow(frames[:-1, :123, :197], frames[1:, :123, :197])  # padded to 128x200, cropped back
    assert odd.shape == (2, 123, 197, 2) and np.isfinite(odd).all()


def test_the_raft_scorer_runs_on_a_local_weights_file(random_raft, synthetic, tmp_path):
    out = motion_of(synthetic["pan1"], flow="raft_small", raft_weights=str(random_raft))
    farneback = motion_of(synthetic["pan1"])
    details = out["motion_mean"].details
    assert details["flow"] == "raft_small" and details["pairs"] == farneback["motion_mean"].details["pairs"] == 8
    assert details["frame_size"] == [512, 288]  # RAFT's frames are shrunk to 512 by default
    values = [out[m].value for m in ("motion_mean", "motion_max", "motion_still_share")]
    assert all(np.isfinite(values)) and values[1] >= values[0] >= 0
    # The weights' bytes are the identity, not their path.
    copy = tmp_path / "copy.pth"
    copy.write_bytes(random_raft.read_bytes())
    same = build_scorer("motion", {"flow": "raft_small", "raft_weights": str(copy)}).config_hash
    assert same == build_scorer("motion", {"flow": "raft_small", "raft_weights": str(random_raft)}).config_hash
    assert same != build_scorer("motion").config_hash
    # RAFT's shards take the GPU limit's slot; Farneback's do not.
    from flows.score_shard import shard_gpus
    from vidqa.scoring.job import ScorerSpec

    assert shard_gpus([ScorerSpec("motion", {"flow": "raft_small", "raft_weights": str(random_raft)})]) > 0
    assert shard_gpus([ScorerSpec("motion", {})]) == 0


def test_missing_raft_weights_say_where_they_were_looked_for(tmp_path, monkeypatch, random_raft):
    from vidqa.errors import ScorerError

    monkeypatch.setenv("VIDQA_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ScorerError) as missing:
        build_scorer("motion", {"flow": "raft_large"}).config_hash
    text = str(missing.value)
    assert "raft_large_C_T_SKHT_V2-ff5fadd5.pth" in text and str(tmp_path / "models" / "torchvision") in text
    assert "https://download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth" in text
    # Put in the models folder under its published name, it is found there.
    target = tmp_path / "models" / "torchvision" / "raft_small_C_T_V2-01064c6d.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(random_raft.read_bytes())
    with pytest.raises(ScorerError, match="not a raft_large state dict"):
        build_scorer("motion", {"flow": "raft_large", "raft_weights": str(random_raft)}).setup()
    found = build_scorer("motion", {"flow": "raft_small"}).identity_record["raft"]
    from vidqa.hashing import file_sha256

    assert found == {"arch": "raft_small", "sha256": file_sha256(target)}
