"""Set-level metrics end to end: detector files found and called as published, StyleGAN-V clip
rules on short videos, the content-keyed reference cache, FVD/FID/KID/IS/PR values checked
against independent float64 numpy/scipy computations on the stored features, SQL-selected
candidate sets, S3 feature storage, the CLI and its flows.

Detectors are tiny random TorchScript stand-ins (tests/detector_fixtures.py) saved under the
real file names with the real call signatures; nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import torch

from conftest import VIDEOS, run_ffmpeg, vidqa_cli
from detector_fixtures import write_tiny_detectors
from vidqa.sets import feature_store
from vidqa.sets import compute as sm
from vidqa.sets.members import SetMember
from vidqa.db import get_engine
from vidqa.models.detectors import DetectorMissing, DETECTOR_SPECS, find_detector_file, load_detector
from vidqa.sets.sampling import choose_frames, clip_frame_indices, member_rng, selection_order


def make_video(path: Path, frames: int, hue: int = 0, pattern: str = "testsrc2", rate: int = 10) -> Path:
    """A small synthetic video with exactly ``frames`` frames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    run_ffmpeg("-f", "lavfi", "-i", f"{pattern}=size=96x64:rate={rate}", "-frames:v", str(frames),
               "-vf", f"hue=h={hue}", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", "8", str(path))
    return path


@pytest.fixture(scope="session")
def detectors_dir(tmp_path_factory) -> Path:
    return write_tiny_detectors(tmp_path_factory.mktemp("detectors"))


@pytest.fixture
def detectors(detectors_dir, monkeypatch) -> Path:
    monkeypatch.setenv("VIDQA_DETECTORS_DIR", str(detectors_dir))
    return detectors_dir


@pytest.fixture(scope="session")
def video_sets(tmp_path_factory) -> dict[str, Path]:
    """Two sets of ten 20-frame videos that differ in colour and pattern."""
    root = tmp_path_factory.mktemp("video-sets")
    for i in range(10):
        make_video(root / "a" / f"a{i}.mp4", 20, hue=36 * i)
        make_video(root / "b" / f"b{i}.mp4", 20, hue=36 * i + 18, pattern="testsrc")
    return {"a": root / "a", "b": root / "b"}


def feature_rows(engine, ids) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(
            "SELECT * FROM feature_sets WHERE id = ANY(:ids) ORDER BY id"), {"ids": list(ids)}).mappings()]


def stored(engine, set_id) -> feature_store.StoredFeatures:
    [row] = feature_rows(engine, [set_id])
    return feature_store.read(row["features_uri"], row["features_sha256"])


def numpy_fd(x: np.ndarray, y: np.ndarray) -> float:
    """Frechet distance in float64 numpy, biased covariances, independent of vidqa (and of
    scipy's sqrtm): Tr sqrtm(S1 S2) = sum sqrt(eig(S1^1/2 S2 S1^1/2)), a symmetric PSD matrix
    whose eigenvalues stay accurate when the covariances are singular (fewer rows than columns)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False, ddof=0), np.cov(y, rowvar=False, ddof=0)
    w, v = np.linalg.eigh(s1)
    half = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(half @ s2 @ half)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


# ----------------------------------------------------------------------------- sampling rules


def test_clip_rules_for_short_and_subsampled_spans():
    rng = np.random.default_rng(0)
    # A span shorter than n_frames * subsample gives no clip (StyleGAN-V discard_short_videos).
    assert clip_frame_indices(15, 16, 1, "random", rng) is None
    assert clip_frame_indices(3, 16, 1, "start") is None
    assert clip_frame_indices(127, 16, 8, "random", rng) is None
    # Exactly long enough: the only 16-frame clip starts at 0, whatever the offset rule.
    assert clip_frame_indices(16, 16, 1, "random", rng).tolist() == list(range(16))
    assert clip_frame_indices(128, 16, 8, "start").tolist() == list(range(0, 128, 8))
    # Subsampled: the last frame only has to exist, so 128 frames allow starts 0..7.
    starts = {int(clip_frame_indices(128, 16, 8, "random", np.random.default_rng(s))[0]) for s in range(400)}
    assert starts == set(range(8))
    # Random offsets cover exactly 0 .. available - (n - 1) * s - 1 (randint(0, avail - n*s + s - 1)).
    starts = {int(clip_frame_indices(20, 16, 1, "random", np.random.default_rng(s))[0]) for s in range(400)}
    assert starts == set(range(5))
    starts = {int(clip_frame_indices(130, 16, 8, "random", np.random.default_rng(s))[0]) for s in range(400)}
    assert starts == set(range(10))
    assert clip_frame_indices(500, 16, 1, "start")[0] == 0
    # Per-video generators: stable for a key, different across keys.
    assert member_rng(3, "k1").integers(0, 10**9) == member_rng(3, "k1").integers(0, 10**9)
    assert member_rng(3, "k1").integers(0, 10**9) != member_rng(3, "k2").integers(0, 10**9)
    assert sorted(selection_order(7, 1)) == list(range(7))


def test_frame_choice_is_uniform_without_replacement():
    counts = [3, 0, 10, 5]
    picks = choose_frames(counts, 6, seed=1)
    assert sum(p.size for p in picks) == 6 and picks[1].size == 0
    for p, c in zip(picks, counts):
        assert len(set(p.tolist())) == p.size and ((p >= 0) & (p < c)).all()
    assert [p.tolist() for p in choose_frames(counts, 100, seed=1)] == [list(range(c)) for c in counts]
    # Every frame is equally likely (data-juicer took the first N): 6 of 18 frames per draw.
    hits = np.zeros(18)
    for seed in range(600):
        picks = choose_frames(counts, 6, seed)
        flat = np.concatenate([p + off for p, off in zip(picks, np.cumsum([0] + counts[:-1]))])
        hits[flat] += 1
    assert np.all(np.abs(hits / 600 - 6 / 18) < 0.08), hits / 600


# ----------------------------------------------------------------------------- detectors


def test_missing_detector_names_file_metrics_and_url(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDQA_DETECTORS_DIR", str(tmp_path / "empty"))
    with pytest.raises(DetectorMissing) as info:
        find_detector_file("i3d_kinetics400")
    message = str(info.value)
    for part in ("i3d_torchscript.pt", "fvd2048_16f", "kvd2048_16f", "prv2048_3n_16f", DETECTOR_SPECS["i3d_kinetics400"].url,
                 str(tmp_path / "empty")):
        assert part in message
    assert "isv2048_ucf" not in message
    junk = tmp_path / "vgg16.pt"
    junk.write_bytes(b"not a torchscript archive")
    with pytest.raises(DetectorMissing, match="not a loadable TorchScript detector"):
        load_detector("vgg16", junk)


def test_detector_is_called_with_uint8_and_its_published_kwargs(detectors):
    i3d = load_detector("i3d_kinetics400")
    assert i3d is load_detector("i3d_kinetics400")  # resident, loaded once
    assert i3d.sha256 == __import__("hashlib").sha256((detectors / "i3d_torchscript.pt").read_bytes()).hexdigest()
    clips = np.random.default_rng(0).integers(0, 256, (2, 16, 24, 32, 3), dtype=np.uint8)
    out = i3d(clips)
    module = torch.jit.load(str(detectors / "i3d_torchscript.pt"))
    x = torch.from_numpy(clips).permute(0, 4, 1, 2, 3)
    expected = module(x, rescale=True, resize=True, return_features=True).detach().double().numpy()
    assert out.shape == (2, 400) and out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    with pytest.raises(TypeError, match="uint8"):
        i3d(clips.astype(np.float32))
    inception = load_detector("inception_v3_2015_12_05")
    images = clips[:, 0]
    module = torch.jit.load(str(detectors / "inception-2015-12-05.pt"))
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    np.testing.assert_allclose(inception(images, "probs"), module(x, no_output_bias=True).detach().double().numpy(),
                               atol=1e-7)  # IS: probabilities without the output bias
    np.testing.assert_allclose(inception(images), module(x, return_features=True).detach().double().numpy(), atol=1e-6)
    assert not np.allclose(inception(images, "probs"), module(x).detach().double().numpy(), atol=1e-7)


# ----------------------------------------------------------------------------- clips from real files


def test_short_videos_are_skipped_and_clip_features_match_an_independent_decode(tmp_path, migrated_db, detectors):
    d = tmp_path / "set"
    d.mkdir()
    (d / "video_90.mov").symlink_to(VIDEOS / "video_90.mov")  # 3 frames: too short
    (d / "counter.mp4").symlink_to(VIDEOS / "counter.mp4")  # 30 frames: frame N shows N
    make_video(d / "exact16.mp4", 16)  # exactly one clip long
    make_video(d / "short15.mp4", 15)  # one frame short
    engine = get_engine()
    [summary] = sm.build_reference(engine, "mixed", str(d), ["fvd2048_16f"])
    [row] = feature_rows(engine, [summary["feature_set"]])
    assert (row["n_items"], row["n_short"], row["n_failed"], row["n_members"]) == (2, 2, 0, 4)
    assert (row["height"], row["width"], row["n_frames"], row["subsample"]) == (240, 320, 16, 1)
    data = stored(engine, row["id"])
    first = {Path(u).name: int(f) for u, f in zip(data.sample_uris, data.sample_frames)}
    assert first["exact16.mp4"] == 0 and 0 <= first["counter.mp4"] <= 30 - 16

    # Decode counter.mp4's clip with a separate ffmpeg command and call the TorchScript file
    # directly with StyleGAN-V's arguments: the stored row must be exactly that.
    k = first["counter.mp4"]
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(VIDEOS / "counter.mp4"), "-vf",
         f"select='between(n\\,{k}\\,{k + 15})',scale=320:240:flags=area", "-fps_mode", "passthrough",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    clip = np.frombuffer(raw, np.uint8).reshape(16, 240, 320, 3)
    module = torch.jit.load(str(detectors / "i3d_torchscript.pt"))
    expected = module(torch.from_numpy(clip.copy())[None].permute(0, 4, 1, 2, 3), rescale=True, resize=True,
                      return_features=True)[0].detach().double().numpy()
    row_of = list(data.sample_uris).index(str(VIDEOS / "counter.mp4"))  # a link is stored as its target
    np.testing.assert_allclose(data.features[row_of], expected, rtol=0, atol=1e-5)
    # Mean and covariance stored in float64, biased (divided by N).
    np.testing.assert_allclose(data.mean, data.features.astype(np.float64).mean(0), atol=1e-12)
    np.testing.assert_allclose(data.cov, np.cov(data.features.astype(np.float64), rowvar=False, ddof=0), atol=1e-10)
    assert row["covariance"].startswith("biased") and row["detector_sha256"] == load_detector("i3d_kinetics400").sha256

    # 128-frame clips: nothing here is long enough; the error says so.
    with pytest.raises(sm.SetMetricError, match="shorter than 128 frames"):
        sm.build_reference(engine, "mixed", str(d), ["fvd2048_128f_subsample8f"])


def test_extraction_stops_at_the_sample_count(detectors, video_sets):
    from vidqa.sets.features import FeatureSpec, extract_features
    from vidqa.storage.local import local_content_id

    members = [SetMember(str(p), local_content_id(str(p))) for p in sorted(video_sets["a"].iterdir())]
    i3d = load_detector("i3d_kinetics400")
    spec = FeatureSpec(i3d.name, i3d.sha256, "features", "clip", 16, 1, "random", 48, 64, 3, 7)
    out = extract_features(members, spec, i3d, workers=2)
    assert out.stats.num_items == 3 and len(set(out.sample_uris)) == 3
    assert out.n_considered == 3  # stopped there: the other seven were not used
    again = extract_features(members, spec, i3d, workers=1)
    assert again.sample_uris == out.sample_uris and np.array_equal(again.stats.features(), out.stats.features())


def test_bad_videos_are_recorded_and_the_set_goes_on(tmp_path, migrated_db, detectors, bad_inputs, video_sets):
    d = tmp_path / "set"
    d.mkdir()
    for name in ("a0.mp4", "a1.mp4", "a2.mp4"):
        (d / name).symlink_to(video_sets["a"] / name)
    for path in bad_inputs.values():
        (d / path.name).symlink_to(path)
    [summary] = sm.build_reference(get_engine(), "with-bad", str(d), ["fvd2048_16f"])
    [row] = feature_rows(get_engine(), [summary["feature_set"]])
    assert row["n_items"] == 3 and row["n_failed"] == 3
    reasons = {Path(f["uri"]).name: f["reason"] for f in row["failures"]}
    assert set(reasons) == {"empty.mp4", "notes.mp4", "audio_only.mp4"}
    assert "empty" in reasons["empty.mp4"] and "no video stream" in reasons["audio_only.mp4"]


# ----------------------------------------------------------------------------- the reference cache


def test_reference_cache_is_keyed_by_content(tmp_path, migrated_db, detectors, video_sets):
    d = tmp_path / "ref"
    d.mkdir()
    for i in range(4):
        shutil.copy(video_sets["a"] / f"a{i}.mp4", d / f"v{i}.mp4")
    engine = get_engine()
    [first] = sm.build_reference(engine, "ref", str(d), ["fvd2048_16f"])
    assert first["reused"] is False and first["n_items"] == 4
    npz = Path(first["features_uri"])
    mtime = npz.stat().st_mtime_ns

    [again] = sm.build_reference(engine, "ref", str(d), ["fvd2048_16f"])
    assert again["reused"] is True and again["feature_set"] == first["feature_set"]
    assert npz.stat().st_mtime_ns == mtime  # nothing was recomputed or rewritten

    (d / "v3.mp4").rename(d / "renamed.mp4")  # same bytes under another name: same content
    [renamed] = sm.build_reference(engine, "ref", str(d), ["fvd2048_16f"])
    assert renamed["reused"] is True and renamed["feature_set"] == first["feature_set"]

    shutil.copy(video_sets["b"] / "b0.mp4", d / "v1.mp4")  # an edited file: new content
    [edited] = sm.build_reference(engine, "ref", str(d), ["fvd2048_16f"])
    assert edited["reused"] is False and edited["feature_set"] != first["feature_set"]
    assert edited["content_digest"] != first["content_digest"]

    # Another sample size or seed is another feature set; the same settings are reused.
    [seeded] = sm.build_reference(engine, "ref", str(d), ["fvd2048_16f"], sm.BuildOptions(seed=5))
    assert seeded["reused"] is False and seeded["feature_set"] != edited["feature_set"]
    # KVD and PRV need the very same I3D features as FVD: no extraction for them.
    shared = sm.build_reference(engine, "ref", str(d), ["kvd2048_16f", "prv2048_3n_16f"])
    assert [s["metric"] for s in shared] == ["kvd2048_16f", "prv2048_3n_16f"]
    assert all(s["reused"] and s["feature_set"] == edited["feature_set"] for s in shared)

    # A metric against "ref" uses the statistics of the current content.
    [value] = sm.compute_metric(engine, "fvd2048_16f", sm.SetSource(source=str(video_sets["b"])), "ref")
    assert value["reference_set_ids"] == [edited["feature_set"]]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM feature_sets")).scalar() == 4


# ----------------------------------------------------------------------------- metric values


def test_fvd_kvd_prv_against_independent_numpy(tmp_path, migrated_db, detectors, video_sets):
    engine = get_engine()
    sm.build_reference(engine, "a", str(video_sets["a"]), ["fvd2048_16f"])
    same = sm.SetSource(source=str(video_sets["a"]))
    # FVD of a set with itself: the candidate, sampled like the reference, is the same
    # feature set, and the distance is ~0.
    [self_fvd] = sm.compute_metric(engine, "fvd2048_16f", same, "a", sm.MetricOptions(candidate_offset="random"))
    assert self_fvd["candidate_set_ids"] == self_fvd["reference_set_ids"]
    trace = feature_rows(engine, self_fvd["reference_set_ids"])[0]["cov_trace"]
    assert abs(self_fvd["value"]) < 1e-6 * trace

    other = sm.SetSource(source=str(video_sets["b"]))
    [fvd] = sm.compute_metric(engine, "fvd2048_16f", other, "a")
    real, fake = stored(engine, fvd["reference_set_ids"][0]), stored(engine, fvd["candidate_set_ids"][0])
    assert real.num_items == fake.num_items == 10
    assert fvd["value"] > 1.0
    assert fvd["value"] == pytest.approx(numpy_fd(real.features, fake.features), rel=1e-6)
    assert (fvd["detector"], fvd["n_frames"], fvd["subsample"], fvd["n_promised"]) == ("i3d_kinetics400", 16, 1, 2048)
    assert (fvd["candidate_offset"], fvd["reference_offset"]) == ("start", "random")
    assert "only 10 generated and 10 real" in fvd["warning"]

    # KVD: with 10 samples each subset is the whole set, so the value is the unbiased MMD^2.
    [kvd] = sm.compute_metric(engine, "kvd2048_16f", other, "a")
    x, y = fake.features.astype(np.float64), real.features.astype(np.float64)
    k = lambda p, q: (p @ q.T / p.shape[1] + 1) ** 3
    m = len(x)
    mmd = ((k(x, x).sum() - np.trace(k(x, x)) + k(y, y).sum() - np.trace(k(y, y))) / (m * (m - 1))
           - 2 * k(x, y).sum() / m**2)
    assert kvd["value"] == pytest.approx(mmd, rel=1e-9)
    assert kvd["unit"].startswith("raw MMD^2")

    # PRV with k=3: brute-force k-NN balls in numpy.
    pr = {r["quantity"]: r["value"] for r in sm.compute_metric(engine, "prv2048_3n_16f", other, "a")}
    dist_rr = np.linalg.norm(y[:, None] - y[None], axis=2)
    dist_ff = np.linalg.norm(x[:, None] - x[None], axis=2)
    radius_r, radius_f = np.sort(dist_rr, 1)[:, 3], np.sort(dist_ff, 1)[:, 3]
    dist_fr = np.linalg.norm(x[:, None] - y[None], axis=2)
    assert pr["precision"] == pytest.approx((dist_fr <= radius_r[None]).any(1).mean())
    assert pr["recall"] == pytest.approx((dist_fr.T <= radius_f[None]).any(1).mean())

    # Runs: run r samples with seed + r; mean and std over runs; bootstrap interval.
    [runs] = sm.compute_metric(engine, "fvd2048_16f", other, "a",
                               sm.MetricOptions(num_runs=2, seed=3, candidate_offset="random", bootstrap=30))
    assert len(runs["run_values"]) == 2 and len(set(runs["reference_set_ids"])) == 2
    assert runs["value"] == pytest.approx(np.mean(runs["run_values"]))
    assert runs["run_std"] == pytest.approx(np.std(runs["run_values"]))
    assert runs["ci_low"] < runs["ci_high"] and runs["n_boot"] == 30 and runs["ci_level"] == pytest.approx(0.95)
    with engine.connect() as conn:  # visible from SQL with what makes them comparable
        rows = conn.execute(sa.text(
            "SELECT metric, quantity, detector_sha256, height, width, n_frames, covariance, unit "
            "FROM metric_values ORDER BY id")).all()
    assert [r.quantity for r in rows] == ["fd", "fd", "kd", "precision", "recall", "fd"]
    assert all(r.detector_sha256 == load_detector("i3d_kinetics400").sha256 and (r.height, r.width) == (240, 320)
               for r in rows)


def test_frame_metrics_and_inception_scores(tmp_path, migrated_db, detectors, video_sets):
    engine = get_engine()
    sm.build_reference(engine, "a", str(video_sets["a"]), ["fid50k", "pr50k_3n"])
    other = sm.SetSource(source=str(video_sets["b"]))
    [fid] = sm.compute_metric(engine, "fid50k", other, "a")
    real, fake = stored(engine, fid["reference_set_ids"][0]), stored(engine, fid["candidate_set_ids"][0])
    assert real.num_items == fake.num_items == 200  # all 10 x 20 frames: fewer than 50k
    assert sorted(zip(fake.sample_uris.tolist(), fake.sample_frames.tolist())) == sorted(
        (str(video_sets["b"] / f"b{i}.mp4"), f) for i in range(10) for f in range(20))
    assert fid["value"] == pytest.approx(numpy_fd(real.features, fake.features), rel=1e-6)
    assert (fid["detector"], fid["n_frames"]) == ("inception_v3_2015_12_05", 1)

    [kid] = sm.compute_metric(engine, "kid50k", other, "a")
    x, y = fake.features.astype(np.float64), real.features.astype(np.float64)
    k = lambda p, q: (p @ q.T / p.shape[1] + 1) ** 3
    m = len(x)  # 200 < 1000: every subset is the whole set
    mmd = ((k(x, x).sum() - np.trace(k(x, x)) + k(y, y).sum() - np.trace(k(y, y))) / (m * (m - 1))
           - 2 * k(x, y).sum() / m**2)
    assert kid["value"] == pytest.approx(mmd, rel=1e-9)

    # IS from the stored probabilities (no output bias), 10 contiguous splits of the rows in
    # their stored order, as StyleGAN2-ADA `compute_is` slices them.
    def reference_is(probs):
        n, scores = len(probs), []
        for i in range(10):
            part = probs[i * n // 10: (i + 1) * n // 10]
            py = part.mean(0, keepdims=True)
            scores.append(np.exp(np.mean(np.sum(part * (np.log(part) - np.log(py)), axis=1))))
        return np.mean(scores), np.std(scores)

    [is_] = sm.compute_metric(engine, "is50k", other)
    probs = stored(engine, is_["candidate_set_ids"][0]).features.astype(np.float64)
    in_order = reference_is(probs)
    assert is_["value"] == pytest.approx(in_order[0], rel=1e-9)
    assert is_["split_std"] == pytest.approx(in_order[1], rel=1e-6)
    assert is_["details"]["is_split_order"] == "in_order" and "is_shuffle" not in is_["details"]
    # Shuffled on request (RandomState(42) first): another number, recorded as such.
    [shuffled] = sm.compute_metric(engine, "is50k", other, options=sm.MetricOptions(is_split_order="shuffled"))
    assert shuffled["details"]["is_split_order"] == "shuffled"
    mixed = probs.copy()
    np.random.RandomState(42).shuffle(mixed)
    assert shuffled["value"] == pytest.approx(reference_is(mixed)[0], rel=1e-9)
    assert shuffled["details"]["is_shuffle"] == "RandomState(42)"
    assert abs(shuffled["value"] - is_["value"]) > 1e-6  # rows grouped by video: the order matters
    assert is_["value"] > 1.0 and is_["reference_set_ids"] == [] and is_["n_real"] is None

    # ISV: C3D 16-frame clips, one per video.
    [isv] = sm.compute_metric(engine, "isv2048_ucf", other)
    assert isv["n_fake"] == 10 and isv["detector"] == "c3d_ucf101" and 1.0 <= isv["value"] <= 101
    # As StyleGAN-V's compute_isv: RandomState(42) shuffle, then 10 contiguous splits.
    clip_probs = stored(engine, isv["candidate_set_ids"][0]).features.astype(np.float64)
    shuffled_probs = clip_probs.copy()
    np.random.RandomState(42).shuffle(shuffled_probs)
    assert isv["value"] == pytest.approx(reference_is(shuffled_probs)[0], rel=1e-9)
    assert isv["details"]["is_split_order"] == "shuffled"
    two = tmp_path / "two"
    two.mkdir()
    for i in range(2):
        (two / f"a{i}.mp4").symlink_to(video_sets["a"] / f"a{i}.mp4")
    with pytest.raises(sm.SetMetricError, match="needs at least 10"):
        sm.compute_metric(engine, "isv2048_ucf", sm.SetSource(source=str(two)))


def test_reference_and_features_on_s3(tmp_path, migrated_db, detectors, video_sets, s3_endpoint, monkeypatch):
    from vidqa.config import reload_settings

    for key, value in s3_endpoint.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("VIDQA_FEATURE_STORAGE", f"s3://{s3_endpoint.bucket}/features")
    reload_settings()
    try:
        for i in range(3):
            s3_endpoint.put(f"setmetrics/real/r{i}.mp4", video_sets["a"] / f"a{i}.mp4")
        source = f"s3://{s3_endpoint.bucket}/setmetrics/real/"
        engine = get_engine()
        [built] = sm.build_reference(engine, "s3ref", source, ["fvd2048_16f"])
        assert built["features_uri"].startswith(f"s3://{s3_endpoint.bucket}/features/") and built["n_items"] == 3
        key = built["features_uri"].split("/", 3)[3]
        assert s3_endpoint.client.head_object(Bucket=s3_endpoint.bucket, Key=key)["ContentLength"] > 0
        [again] = sm.build_reference(engine, "s3ref", source, ["fvd2048_16f"])
        assert again["reused"] and again["feature_set"] == built["feature_set"]
        [fvd] = sm.compute_metric(engine, "fvd2048_16f", sm.SetSource(source=str(video_sets["b"])), "s3ref")
        real = stored(engine, fvd["reference_set_ids"][0])
        assert real.num_items == 3 and np.isfinite(fvd["value"])
        assert fvd["reference_source"] == source
    finally:
        monkeypatch.delenv("VIDQA_FEATURE_STORAGE")
        reload_settings()


# ----------------------------------------------------------------------------- CLI and flows


def test_cli_reference_metrics_and_sql_selected_candidates(tmp_path, migrated_db, detectors_dir, video_sets,
                                                           prefect_api_url):
    env = {"VIDQA_DATABASE_URL": migrated_db, "PREFECT_API_URL": prefect_api_url, "COLUMNS": "400",
           "VIDQA_DETECTORS_DIR": str(tmp_path / "none")}
    # Without detector files: which file, for which metrics, from where.
    missing = vidqa_cli("metrics", "detectors", env=env, check=False)
    assert missing.returncode == 1 and "MISSING" in missing.stdout and "inception-2015-12-05.pt" in missing.stdout
    failed = vidqa_cli("reference", "build", "real", str(video_sets["a"]), "-m", "fvd2048_16f", env=env, check=False)
    assert failed.returncode == 2
    assert "i3d_torchscript.pt" in failed.stderr and "dropbox" in failed.stderr.replace("\n", "")
    bad = vidqa_cli("metrics", "compute", str(video_sets["b"]), "-m", "fvd9_bogus", "-r", "real", env=env, check=False)
    assert bad.returncode == 2 and "unknown metric" in bad.stderr

    env["VIDQA_DETECTORS_DIR"] = str(detectors_dir)
    assert vidqa_cli("metrics", "detectors", env=env).stdout.count(str(detectors_dir)) == 4
    built = vidqa_cli("reference", "build", "real", str(video_sets["a"]), "-m", "fvd2048_16f", env=env)
    assert "fvd2048_16f" in built.stdout and "False" in built.stdout
    assert "real" in vidqa_cli("reference", "list", env=env).stdout

    # Score the candidate folder, then select videos in SQL: the selection's features are the
    # same content as the folder's, so it is the very same feature set and value.
    candidates = tmp_path / "cands"
    candidates.mkdir()
    for i in range(6):
        make_video(candidates / f"c{i}.mp4", 16 + 4 * i, hue=30 * i)
    vidqa_cli("run", str(candidates), "--scorers", "technical", env=env)
    selected = json.loads(vidqa_cli(
        "metrics", "compute", "-m", "fvd2048_16f", "-r", "real", "--where", "duration_s > 2.2",
        "--level", "video", "--format", "json", env=env).stdout)
    assert selected[0]["n_fake"] == 4 and selected[0]["candidate_source"].startswith("sql:video:")
    subset = tmp_path / "subset"
    subset.mkdir()
    for i in range(2, 6):
        (subset / f"c{i}.mp4").symlink_to(candidates / f"c{i}.mp4")
    direct = json.loads(vidqa_cli("metrics", "compute", str(subset), "-m", "fvd2048_16f", "-r", "real",
                                  "--format", "json", env=env).stdout)
    assert direct[0]["candidate_set_ids"] == selected[0]["candidate_set_ids"]
    assert direct[0]["value"] == pytest.approx(selected[0]["value"])

    # One metric that cannot be computed (no 128-frame videos) does not stop the others.
    partial = vidqa_cli("metrics", "compute", str(subset), "-m", "fvd2048_128f,fid50k", "-r", "real",
                        "--format", "json", env=env, check=False)
    assert partial.returncode == 2 and "fvd2048_128f" in partial.stderr and "shorter than 128" in partial.stderr
    assert [r["metric"] for r in json.loads(partial.stdout)] == ["fid50k"]

    # The unit travels with every value: in the table, the CSV and JSON.
    assert selected[0]["unit"] == "squared distance in detector feature space"
    table = vidqa_cli("metrics", "list", "--format", "csv", env=env).stdout.splitlines()
    header = table[0].split(",")
    assert header[header.index("value") + 1] == "unit" and "squared distance in detector feature space" in table[1]

    listed = json.loads(vidqa_cli("metrics", "list", "--format", "json", env=env).stdout)
    assert [r["id"] for r in listed][1:] == [direct[0]["id"], selected[0]["id"]]
    assert listed[0]["detector_sha256"] == load_detector("inception_v3_2015_12_05", detectors_dir).sha256
    assert listed[1]["detector_sha256"] == load_detector("i3d_kinetics400", detectors_dir).sha256
