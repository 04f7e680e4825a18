"""No-reference quality (scorer ``iqa``): BRISQUE against the ``brisque`` package's own feature
code and libsvm's own prediction on the trained model its wheel carries, PIQE against
``pypiqe`` (the Python port of MATLAB's piqe), on a frame of every shared video."""

import numpy as np
import pytest

from conftest import VIDEOS, run_ffmpeg
from iqa_reference import package_brisque, pypiqe_rgb
from vidqa.errors import ScorerError
from vidqa.metrics import brisque as vb
from vidqa.metrics.piqe import piqe
from vidqa.models.brisque import BrisqueWeights, brisque_file
from vidqa.scorers import build_scorer
from vidqa.scorers.base import ScoreItem
from vidqa.video.probe import probe_video

SHARED = sorted(p for p in VIDEOS.iterdir() if p.suffix in (".mp4", ".mkv", ".mov") and p.name != "corrupted.mp4")


def frame_of(path, index: int = 12) -> np.ndarray:
    """Frame ``index``, or the last one of a shorter video."""
    import av

    with av.open(str(path)) as container:
        for k, frame in enumerate(container.decode(video=0)):
            if k == index:
                break
        return frame.to_ndarray(format="rgb24")


@pytest.fixture(scope="module")
def package():
    return package_brisque()


@pytest.fixture(scope="module")
def model():
    return BrisqueWeights().load().model


@pytest.mark.parametrize("path", SHARED, ids=lambda p: p.name)
def test_brisque_is_the_packages_on_every_shared_video(path, package, model):
    frame = frame_of(path)
    if frame.std() == 0:  # fades.mp4 is flat colour throughout
        assert np.isnan(package(frame, snap=True))
        with pytest.raises(vb.BrisqueUndefined, match="no contrast"):
            vb.brisque(frame, model)
        return
    assert vb.brisque(frame, model) == pytest.approx(package(frame, snap=True), abs=1e-7)


def test_a_flat_area_leaves_the_score_to_rounding_in_the_package_and_not_here(package, model):
    frame = frame_of(VIDEOS / "counter.mp4")  # a flat background around the counter
    ours = vb.brisque(frame, model)
    assert ours == pytest.approx(package(frame, snap=True), abs=1e-7)
    # Without the snap, the package's flat-area MSCN (0 up to its convolution's rounding) moves
    # pixels across the fit's sides: a visible change of score from rounding alone.
    assert abs(package(frame, snap=False) - ours) > 0.5
    with pytest.raises(vb.BrisqueUndefined, match="too small"):
        vb.brisque(np.ascontiguousarray(frame_of(VIDEOS / "counter.mp4")[:13, :200]), model)
    # A flat colour frame: the package fits its rounding noise, here and there a number.
    flat = frame_of(VIDEOS / "fades.mp4")
    assert flat.std() == 0 and np.isfinite(package(flat, snap=False))
    with pytest.raises(vb.BrisqueUndefined):
        vb.brisque(flat, model)
    # A frame without flat areas: no coefficient near 0, the package's own steps unchanged.
    textured = np.random.default_rng(3).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    assert vb.brisque(textured, model) == pytest.approx(package(textured, snap=False), abs=1e-7)


def test_the_regressor_is_libsvms_own_prediction(package, model):
    from libsvm import svmutil

    svm = package.reference.model
    rng = np.random.default_rng(5)
    for features in rng.uniform(-1, 1, (50, 36)):
        x, _ = svmutil.gen_svm_nodearray([float(f) for f in features], isKernel=False)
        expected = svmutil.libsvm.svm_predict(svm, x)
        unscaled = model.feature_min + (features + 1) / 2 * (model.feature_max - model.feature_min)
        assert model.predict(unscaled) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("path", SHARED, ids=lambda p: p.name)
def test_piqe_is_pypiqes_on_every_shared_video(path):
    frame = frame_of(path)
    assert piqe(frame) == pytest.approx(pypiqe_rgb(frame), abs=1e-9)


def test_piqe_pads_like_pypiqe_and_rates_flat_frames_100():
    rng = np.random.default_rng(8)
    base = frame_of(VIDEOS / "videoscore_video1.mp4")
    for h, w in ((100, 130), (33, 47), (64, 64)):
        crop = np.ascontiguousarray(base[:h, :w])
        noisy = np.clip(crop + rng.normal(0, 12, crop.shape), 0, 255).astype(np.uint8)
        for frame in (crop, noisy):
            assert piqe(frame) == pytest.approx(pypiqe_rgb(frame), abs=1e-9)
    assert piqe(np.zeros((64, 80, 3), np.uint8)) == 100.0
    assert piqe(np.ascontiguousarray(base[:5, :3])) == pytest.approx(pypiqe_rgb(base[:5, :3]), abs=1e-9)
    assert piqe(np.full((64, 80, 3), 128, np.uint8)) == 100.0


def test_distortion_raises_both_scores(model):
    import cv2

    clean = frame_of(VIDEOS / "videoscore_video1.mp4")
    noisy = np.clip(clean + np.random.default_rng(1).normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(clean, (0, 0), 4)
    assert vb.brisque(noisy, model) > vb.brisque(clean, model) + 10
    assert vb.brisque(blurred, model) > vb.brisque(clean, model) + 10
    assert piqe(noisy) > piqe(clean) + 10


def iqa_of(path, **config) -> dict:
    scorer = build_scorer("iqa", config).setup()
    probe = probe_video(str(path))
    frames = scorer.sampling.sample(str(path), probe)
    (out,) = scorer.score([ScoreItem(uri=str(path), probe=probe, frames=frames)])
    return out, frames


def test_the_scorer_means_over_frames_and_says_why_a_flat_clip_has_no_brisque(tmp_path, model):
    out, frames = iqa_of(VIDEOS / "videoscore_video1.mp4")
    expected = [vb.brisque(f, model) for f in frames.array]
    assert out["brisque"].value == pytest.approx(np.mean(expected), abs=1e-9)
    assert out["brisque"].details["frames"] == [round(v, 6) for v in expected]
    assert out["piqe"].value == pytest.approx(np.mean([piqe(f) for f in frames.array]), abs=1e-9)

    black = tmp_path / "black.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "color=c=black:s=320x240:r=5:d=2", "-c:v", "libx264", str(black))
    out, _ = iqa_of(black)
    assert out["brisque"].value is None and "no frame has contrast" in out["brisque"].details["undefined"]
    assert out["piqe"].value == 100.0


def test_missing_or_foreign_model_files_say_how_to_provide_them(tmp_path):
    with pytest.raises(ScorerError, match="BRISQUE svm file .*nope.txt.* not found.*pip install brisque"):
        build_scorer("iqa", {"brisque_svm": str(tmp_path / "nope.txt")}).config_hash
    bogus = tmp_path / "model.txt"
    bogus.write_text("svm_type c_svc\nkernel_type linear\nSV\n")
    with pytest.raises(ScorerError, match="expected an epsilon_svr with an rbf kernel"):
        build_scorer("iqa", {"brisque_svm": str(bogus)}).setup()


def test_the_model_files_are_in_the_configuration_hash(tmp_path):
    default = build_scorer("iqa")
    copy = tmp_path / "renamed.txt"
    copy.write_bytes(brisque_file("svm").read_bytes())
    # The same bytes under another name and folder: the same configuration.
    assert build_scorer("iqa", {"brisque_svm": str(copy)}).config_hash == default.config_hash
    other = tmp_path / "other.txt"
    other.write_bytes(brisque_file("svm").read_bytes().replace(b"gamma 0.05", b"gamma 0.06"))
    assert build_scorer("iqa", {"brisque_svm": str(other)}).config_hash != default.config_hash


def test_the_flat_area_threshold_sits_between_rounding_and_real_coefficients():
    """What FLAT_MSCN separates, on a frame of every shared video at both BRISQUE scales: the
    rounding residue of flat areas below 1e-12, every real coefficient above 1e-9."""
    import cv2

    residue, smallest = 0.0, np.inf
    for path in SHARED:
        luma = vb.gray(frame_of(path))
        for image in (luma, cv2.resize(luma, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)):
            mu = vb._blur(image)
            raw = np.abs((image - mu) / (np.sqrt(np.abs(mu**2 - vb._blur(image**2))) + vb.MSCN_C))
            residue = max(residue, float(raw[raw < vb.FLAT_MSCN].max(initial=0.0)))
            smallest = min(smallest, float(raw[raw >= vb.FLAT_MSCN].min()))
    assert residue < 1e-12 and smallest > 1e-9, (residue, smallest)
