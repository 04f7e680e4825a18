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
    scorer = build_scorer("motion", config)
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
