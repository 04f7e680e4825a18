"""Technical metrics against independent computations: plain float64 numpy loops,
scikit-image's SSIM and OpenCV's Laplacian."""

import cv2
import numpy as np
import pytest
from skimage.color import rgb2gray
from skimage.metrics import structural_similarity

from vidqa.metrics import technical as tm
from vidqa.scorers import ScoreItem
from vidqa.scorers.technical import TechnicalScorer


def random_frames(n=4, h=48, w=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_luminance_matches_pixelwise_formula():
    frames = random_frames()
    per_frame = [
        np.mean([[0.2126 * float(p[0]) + 0.7152 * float(p[1]) + 0.0722 * float(p[2]) for p in row] for row in f]) / 255
        for f in frames
    ]
    stats = tm.luminance_stats(frames)
    assert stats["luminance_mean"] == pytest.approx(np.mean(per_frame), abs=1e-12)
    assert stats["luminance_min"] == pytest.approx(min(per_frame), abs=1e-12)
    assert stats["luminance_max"] == pytest.approx(max(per_frame), abs=1e-12)


def test_luminance_of_black_and_white():
    frames = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    frames[1] = 255
    assert tm.luminance_stats(frames) == pytest.approx(
        {"luminance_mean": 0.5, "luminance_min": 0.0, "luminance_max": 1.0}
    )


def test_luma_matches_skimage_rgb2gray():
    frames = random_frames(n=1)
    np.testing.assert_allclose(tm.luma(frames)[0], rgb2gray(frames[0]), atol=2e-4)


def test_laplacian_variance_matches_opencv():
    frame = random_frames(n=1)[0]
    grey = frame.astype(np.float64) @ tm.LUMA_709
    expected = cv2.Laplacian(grey, cv2.CV_64F, ksize=1).var()
    assert tm.laplacian_variance(frame) == pytest.approx(expected, rel=1e-10)


def test_laplacian_variance_by_hand_on_interior():
    frame = random_frames(n=1, h=12, w=10)[0]
    y = frame.astype(np.float64) @ tm.LUMA_709
    lap = np.zeros_like(y)
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            im, ip = abs(i - 1), (i + 1 if i + 1 < y.shape[0] else 2 * (y.shape[0] - 1) - (i + 1))
            jm, jp = abs(j - 1), (j + 1 if j + 1 < y.shape[1] else 2 * (y.shape[1] - 1) - (j + 1))
            lap[i, j] = y[im, j] + y[ip, j] + y[i, jm] + y[i, jp] - 4 * y[i, j]
    assert tm.laplacian_variance(frame) == pytest.approx(lap.var(), rel=1e-12)


def test_constant_video_has_no_sharpness_and_no_change():
    frames = np.full((5, 32, 40, 3), 117, dtype=np.uint8)
    assert tm.sharpness(frames) == 0.0
    assert tm.mse_dyn(frames) == 0.0
    assert tm.ssim_sim(frames) == pytest.approx(1.0)
    assert tm.ssim_dyn(frames) == pytest.approx(1.0)


def test_blur_lowers_sharpness():
    frame = random_frames(n=1, h=64, w=64)[0]
    blurred = cv2.GaussianBlur(frame, (7, 7), 2.0)
    assert tm.laplacian_variance(blurred) < 0.2 * tm.laplacian_variance(frame)


def test_mse_dyn_matches_videoscore_definition():
    frames = random_frames(n=6)
    for step in (1, 2, 4):
        f = frames[::step].astype(np.float64)
        expected = np.mean(
            [((f[i] - f[i + 1]) ** 2).sum() / (f.shape[1] * f.shape[2]) for i in range(len(f) - 1)]
        )
        assert tm.mse_dyn(frames, step) == pytest.approx(expected, rel=1e-12)


def test_mse_dyn_of_known_shift():
    a = np.zeros((16, 16, 3), dtype=np.uint8)
    b = np.full((16, 16, 3), 10, dtype=np.uint8)
    # every pixel differs by 10 in each of 3 channels: sum 3*100 per pixel
    assert tm.mse_dyn(np.stack([a, b, a])) == pytest.approx(300.0)


def test_ssim_matches_scikit_image():
    frames = random_frames(n=2, h=40, w=52)
    smooth = cv2.GaussianBlur(frames[0], (5, 5), 1.0)
    for a, b in [(frames[0], frames[1]), (frames[0], smooth)]:
        ya, yb = tm.luma(a)[0], tm.luma(b)[0]
        expected = structural_similarity(ya, yb, data_range=1.0)
        assert tm.ssim(ya, yb) == pytest.approx(expected, abs=1e-12)


def test_ssim_sim_and_dyn_average_pairs():
    frames = random_frames(n=5)
    grey = [rgb2gray(f) for f in frames]
    sim = np.mean([structural_similarity(grey[i], grey[i + 1], data_range=1.0) for i in range(4)])
    dyn2 = np.mean([structural_similarity(grey[i], grey[i + 2], data_range=1.0) for i in (0, 2)])
    assert tm.ssim_sim(frames) == pytest.approx(sim, abs=1e-4)
    assert tm.ssim_dyn(frames, step=2) == pytest.approx(dyn2, abs=1e-4)


def test_temporal_metrics_need_two_frames():
    with pytest.raises(ValueError):
        tm.mse_dyn(random_frames(n=1))


def test_scorer_reports_undefined_temporal_metrics_for_one_frame(shared_probe_and_frames):
    probe, frames = shared_probe_and_frames
    frames.array = frames.array[:1]
    frames.indices = frames.indices[:1]
    out = TechnicalScorer().score([ScoreItem("x", probe, frames)])[0]
    assert out["luminance_mean"].value is not None
    for metric in ("mse_dyn", "ssim_dyn", "ssim_sim"):
        assert out[metric].value is None
        assert "two frames" in out[metric].details["undefined"]


@pytest.fixture
def shared_probe_and_frames():
    from conftest import VIDEOS
    from vidqa.video.probe import probe_video
    from vidqa.video.sampling import sample_frames_uniform

    path = str(VIDEOS / "fades.mp4")
    probe = probe_video(path)
    return probe, sample_frames_uniform(path, probe, 4)
