"""Set-level metrics (vidqa.metrics.distribution) against independent float64 numpy
computations written here, against torchmetrics' own functions and metric classes (fed
features directly through an identity "detector": no weights are downloaded), and against
the StyleGAN2-ADA formulas quoted in REFERENCE.md section 5."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from vidqa.metrics.distribution import (
    SUPPORTED_METRICS,
    FeatureStats,
    bootstrap_ci,
    frechet_distance,
    frechet_distance_from_features,
    frechet_distance_with_info,
    inception_score,
    kernel_inception_distance,
    mean_cov,
    parse_metric_name,
    precision_recall,
    sample_count_warning,
    unbiased_mmd2,
)

torchmetrics = pytest.importorskip("torchmetrics")
pytestmark = pytest.mark.filterwarnings("ignore:Metric `.*` will save all extracted features:UserWarning")
from torchmetrics.image.fid import FrechetInceptionDistance, _compute_fid  # noqa: E402
from torchmetrics.image.inception import InceptionScore as TMInceptionScore  # noqa: E402
from torchmetrics.image.kid import KernelInceptionDistance, poly_mmd  # noqa: E402


class IdentityDetector(torch.nn.Module):
    """Stands in for the detector: the "images" given to torchmetrics are the features."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def gaussian(rng, n, d, shift=0.0, scale=1.0):
    mixing = rng.normal(size=(d, d)) / math.sqrt(d)
    return shift + scale * rng.normal(size=(n, d)) @ (np.eye(d) + 0.5 * mixing)


# --------------------------------------------------------------------------- numpy references


def np_frechet(mu1, s1, mu2, s2):
    """Tr sqrt(S1 S2) = sum sqrt(eig(sqrt(S1) S2 sqrt(S1))), all symmetric eigen-decompositions."""
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    tr_sqrt = np.sqrt(np.clip(inner, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def np_mmd2(x, y):
    d = x.shape[1]
    k = lambda a, b: (np.einsum("id,jd->ij", a, b) / d + 1) ** 3  # noqa: E731
    off = ~np.eye(len(x), dtype=bool)
    return float(k(x, x)[off].mean() + k(y, y)[off].mean() - 2 * k(x, y).mean())


def np_inception_score(p, splits):
    n = len(p)
    scores = []
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits]
        py = part.mean(axis=0)
        scores.append(np.exp(np.mean([np.sum(row * (np.log(row) - np.log(py))) for row in part])))
    return np.mean(scores), np.std(scores)


def np_precision_recall(real, fake, k):
    def dist(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    def coverage(manifold, probes):
        radius = np.partition(dist(manifold, manifold), k, axis=1)[:, k]  # k-th neighbour, self is 0th
        return float((dist(probes, manifold) <= radius[None, :]).any(axis=1).mean())

    return coverage(real, fake), coverage(fake, real)


# --------------------------------------------------------------------------- FeatureStats


def test_feature_stats_batches_match_numpy_cov_both_conventions():
    rng = np.random.default_rng(0)
    x = gaussian(rng, 257, 12, shift=3.0)
    stats = FeatureStats()
    for batch in np.array_split(x, 7):
        stats.update(torch.from_numpy(batch) if len(batch) % 2 else batch)
    assert stats.num_items == 257
    np.testing.assert_allclose(stats.mean(), x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov(), np.cov(x, rowvar=False, bias=True), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(stats.cov(ddof=1), np.cov(x, rowvar=False), rtol=1e-11, atol=1e-13)


def test_feature_stats_keeps_precision_with_a_large_offset():
    # StyleGAN's raw_cov / n - outer(mean, mean) cancels catastrophically here; the Chan update does not.
    rng = np.random.default_rng(1)
    x = 1e6 + rng.normal(size=(4000, 4)) * 1e-2
    stats = FeatureStats()
    for batch in np.array_split(x, 9):
        stats.update(batch)
    expected = np.cov(x - x.mean(axis=0), rowvar=False, bias=True)
    np.testing.assert_allclose(stats.cov(), expected, rtol=1e-6, atol=1e-12)


def test_feature_stats_merge_cap_capture_and_npz(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(90, 5))
    a, b = FeatureStats(capture_all=True), FeatureStats(capture_all=True)
    a.update(x[:30])
    b.update(x[30:])
    a.merge(b)
    whole = FeatureStats()
    whole.update(x)
    np.testing.assert_allclose(a.cov(), whole.cov(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.features(), x.astype(np.float32))

    capped = FeatureStats(capture_all=True, max_items=40)
    assert capped.update(x[:25]) == 25
    assert capped.update(x[25:]) == 15
    assert capped.is_full() and capped.update(x) == 0
    np.testing.assert_allclose(capped.mean(), x[:40].mean(axis=0), rtol=1e-12)
    assert capped.features().shape == (40, 5)
    with pytest.raises(ValueError, match="max_items"):
        capped.merge(b)
    with pytest.raises(ValueError, match="features per row"):
        whole.update(rng.normal(size=(3, 6)))

    path = tmp_path / "stats.npz"
    a.to_npz(path)
    loaded = FeatureStats.from_npz(path)
    assert loaded.num_items == 90 and loaded.capture_all
    np.testing.assert_array_equal(loaded.cov(ddof=1), a.cov(ddof=1))
    np.testing.assert_array_equal(loaded.features(), a.features())


# --------------------------------------------------------------------------- Frechet distance


def test_frechet_distance_matches_eigen_decomposition_reference():
    rng = np.random.default_rng(3)
    real, fake = gaussian(rng, 600, 24), gaussian(rng, 500, 24, shift=0.3, scale=1.3)
    mu1, s1 = mean_cov(real)
    mu2, s2 = mean_cov(fake)
    expected = np_frechet(mu1, s1, mu2, s2)
    assert expected > 1.0
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance_from_features(real, fake) == pytest.approx(expected, rel=1e-6)
    info = frechet_distance_with_info(mu1, s1, mu2, s2)
    assert info.eps_added == 0.0
    assert info.mean_term == pytest.approx(((mu1 - mu2) ** 2).sum(), rel=1e-12)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    rng = np.random.default_rng(4)
    mu, s = mean_cov(gaussian(rng, 400, 32))
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-6 * np.trace(s)


def test_frechet_distance_of_a_singular_set_with_itself_is_clamped_to_exactly_zero():
    """256 ReLU-like rows in 512 dims: the plain sqrtm (every library's path, taken here too)
    leaves a negative sum, which is stored as 0 with the sum kept."""
    import scipy.linalg

    x = np.maximum(np.random.default_rng(0).normal(size=(256, 512)), 0.0)
    mu, s = mean_cov(x)
    plain = 2 * np.trace(s) - 2 * np.trace(scipy.linalg.sqrtm(s @ s)).real  # pytorch-fid's formula
    assert plain < 0
    info = frechet_distance_with_info(mu, s, mu, s)
    assert info.sqrt_method == "sqrtm" and info.value == 0.0
    assert info.raw_value == pytest.approx(plain, rel=1e-9, abs=1e-12)
    # A positive distance is not touched.
    far = frechet_distance_with_info(mu, s, mu + 0.1, s)
    assert far.value == far.raw_value == pytest.approx(512 * 0.01 + info.raw_value, rel=1e-9)


def test_frechet_distance_singular_covariances_are_finite_and_correct():
    # 10 samples in 64 dims: both covariances have rank 9; S1 S2 is singular.
    rng = np.random.default_rng(5)
    mu1, s1 = mean_cov(rng.normal(size=(10, 64)))
    mu2, s2 = mean_cov(rng.normal(size=(10, 64)) + 0.2)
    assert np.linalg.matrix_rank(s1 @ s2) < 64
    info = frechet_distance_with_info(mu1, s1, mu2, s2)
    assert math.isfinite(info.value)
    assert info.value == pytest.approx(np_frechet(mu1, s1, mu2, s2), rel=1e-6)


def test_frechet_distance_retries_with_eps_when_sqrtm_fails():
    # S2 = [[0, 1], [0, 0]] is nilpotent: it has no square root, so sqrtm(S1 S2) fails and the
    # eps retry takes sqrtm((1 + eps)(S2 + eps I)) = sqrt(1 + eps) [[sqrt(eps), 1/(2 sqrt(eps))], [0, sqrt(eps)]].
    eps = 1e-6
    s1, s2 = np.eye(2), np.array([[0.0, 1.0], [0.0, 0.0]])
    info = frechet_distance_with_info(np.zeros(2), s1, np.zeros(2), s2, eps=eps)
    assert info.eps_added == eps
    assert info.value == pytest.approx(2.0 - 4.0 * math.sqrt(eps * (1 + eps)), rel=1e-9)


def test_frechet_distance_rejects_a_large_imaginary_part_and_bad_shapes():
    with pytest.raises(ValueError, match="imag"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.diag([-1.0, 1.0]))
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
    with pytest.raises(ValueError):
        frechet_distance(np.zeros((3, 1)), np.eye(3), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="non-finite"):
        frechet_distance(np.full(2, np.nan), np.eye(2), np.zeros(2), np.eye(2))


def test_frechet_distance_matches_torchmetrics():
    rng = np.random.default_rng(6)
    real, fake = gaussian(rng, 300, 16), gaussian(rng, 250, 16, shift=0.5, scale=0.8)
    for ddof in (0, 1):
        mu1, s1 = mean_cov(real, ddof)
        mu2, s2 = mean_cov(fake, ddof)
        theirs = _compute_fid(*(torch.from_numpy(a) for a in (mu1, s1, mu2, s2))).item()
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(theirs, rel=1e-6)

    # torchmetrics' metric divides its covariance by N - 1: it equals ours with ddof=1 only.
    metric = FrechetInceptionDistance(feature=IdentityDetector(16))
    metric.update(torch.from_numpy(real), real=True)
    metric.update(torch.from_numpy(fake), real=False)
    theirs = metric.compute().item()
    ours_unbiased = frechet_distance(*mean_cov(real, 1), *mean_cov(fake, 1))
    ours_stylegan = frechet_distance(*mean_cov(real), *mean_cov(fake))
    assert ours_unbiased == pytest.approx(theirs, rel=1e-6)
    assert abs(ours_stylegan - theirs) > 1e-4 * theirs


# --------------------------------------------------------------------------- KID


def test_kid_whole_set_equals_independent_unbiased_mmd():
    rng = np.random.default_rng(7)
    real, fake = gaussian(rng, 60, 8), gaussian(rng, 60, 8, shift=0.4)
    result = kernel_inception_distance(real, fake, num_subsets=1, max_subset_size=60, seed=0)
    expected = np_mmd2(fake, real)
    assert expected > 0.01
    assert result.subset_size == 60
    assert result.mean == pytest.approx(expected, rel=1e-10)
    assert unbiased_mmd2(fake, real) == pytest.approx(expected, rel=1e-10)


def test_kid_is_stylegan_compute_kid_on_the_same_draws():
    rng = np.random.default_rng(8)
    real, fake = gaussian(rng, 120, 10), gaussian(rng, 90, 10, shift=0.3)
    num_subsets, max_subset_size, seed = 7, 50, 123
    result = kernel_inception_distance(real, fake, num_subsets, max_subset_size, seed)

    # StyleGAN2-ADA metrics/kernel_inception_distance.py, with its draws from our seeded generator.
    draws = np.random.default_rng(seed)
    n = real.shape[1]
    m = min(min(real.shape[0], fake.shape[0]), max_subset_size)
    t = 0
    for _ in range(num_subsets):
        x = fake[draws.choice(fake.shape[0], m, replace=False)]
        y = real[draws.choice(real.shape[0], m, replace=False)]
        a = (x @ x.T / n + 1) ** 3 + (y @ y.T / n + 1) ** 3
        b = (x @ y.T / n + 1) ** 3
        t += (a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m
    kid = t / num_subsets / m
    assert result.mean == pytest.approx(kid, rel=1e-10)
    assert result.std == pytest.approx(np.std(result.subset_values), rel=1e-12)
    assert result.std > 0
    scaled = kernel_inception_distance(real, fake, num_subsets, max_subset_size, seed, scale=1000.0)
    assert scaled.mean == pytest.approx(1000.0 * kid, rel=1e-10) and scaled.scale == 1000.0


def test_kid_subsets_match_torchmetrics_poly_mmd_and_metric():
    rng = np.random.default_rng(9)
    real, fake = gaussian(rng, 80, 12), gaussian(rng, 70, 12, shift=0.2, scale=1.1)
    result = kernel_inception_distance(real, fake, num_subsets=5, max_subset_size=40, seed=3)
    draws = np.random.default_rng(3)
    for value in result.subset_values:
        fake_idx = draws.choice(70, 40, replace=False)
        real_idx = draws.choice(80, 40, replace=False)
        theirs = poly_mmd(
            torch.from_numpy(real[real_idx]), torch.from_numpy(fake[fake_idx]), degree=3, gamma=1 / 12, coef=1.0
        ).item()
        assert value == pytest.approx(theirs, rel=1e-9)

    # The whole set as the single subset: torchmetrics' random permutation cannot change it.
    metric = KernelInceptionDistance(feature=IdentityDetector(12), subsets=1, subset_size=70)
    metric.update(torch.from_numpy(real[:70]), real=True)
    metric.update(torch.from_numpy(fake), real=False)
    theirs = metric.compute()[0].item()
    ours = kernel_inception_distance(real[:70], fake, num_subsets=1, max_subset_size=70, seed=0).mean
    assert ours == pytest.approx(theirs, rel=1e-9)


def test_kid_rejects_mismatched_widths_and_tiny_sets():
    with pytest.raises(ValueError, match="widths"):
        kernel_inception_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        kernel_inception_distance(np.zeros((1, 3)), np.zeros((5, 3)))


# --------------------------------------------------------------------------- Inception score


def test_inception_score_of_uniform_predictions_is_one():
    result = inception_score(np.full((100, 7), 1 / 7), num_splits=10)
    assert result.mean == pytest.approx(1.0, abs=1e-12)
    assert result.std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_of_evenly_spread_one_hot_predictions_is_the_class_count():
    classes, splits = 13, 10
    probs = np.eye(classes)[np.arange(classes * splits * 4) % classes]  # every split holds each class 4 times
    result = inception_score(probs, num_splits=splits)
    assert result.mean == pytest.approx(classes, abs=1e-9)
    np.testing.assert_allclose(result.split_scores, classes, atol=1e-9)


def test_inception_score_matches_numpy_and_torchmetrics_on_dirichlet_probs():
    rng = np.random.default_rng(10)
    probs = rng.dirichlet(np.full(20, 0.3), size=1003)  # 1003 rows: uneven splits
    mean, std = np_inception_score(probs, 10)
    result = inception_score(probs, num_splits=10)
    assert result.mean == pytest.approx(mean, rel=1e-10)
    assert result.std == pytest.approx(std, rel=1e-8)
    assert result.mean > 1.5

    # torchmetrics softmaxes its "logits": log-probabilities give back the probabilities.
    metric = TMInceptionScore(feature=IdentityDetector(20), splits=1)
    metric.update(torch.from_numpy(np.log(probs)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about the std of a single split
        theirs = metric.compute()[0].item()
    assert inception_score(probs, num_splits=1).mean == pytest.approx(theirs, rel=1e-9)


def test_inception_score_rejects_non_probabilities():
    with pytest.raises(ValueError, match="sum to 1"):
        inception_score(np.ones((20, 4)), num_splits=2)
    with pytest.raises(ValueError, match="split"):
        inception_score(np.full((5, 4), 0.25), num_splits=10)


# --------------------------------------------------------------------------- precision / recall


def test_precision_recall_of_identical_sets_is_one():
    x = np.random.default_rng(11).normal(size=(200, 16))
    assert tuple(precision_recall(x, x.copy())) == (1.0, 1.0)


def test_precision_recall_of_far_apart_clusters_is_zero():
    rng = np.random.default_rng(12)
    real, fake = rng.normal(size=(100, 8)), rng.normal(size=(100, 8)) + 100.0
    assert tuple(precision_recall(real, fake)) == (0.0, 0.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_precision_recall_matches_brute_force_numpy(dtype):
    rng = np.random.default_rng(13)
    real, fake = gaussian(rng, 150, 10), gaussian(rng, 130, 10, shift=0.6, scale=0.7)
    expected = np_precision_recall(real, fake, k=3)
    assert 0.05 < expected[0] < 0.999 and 0.05 < expected[1] < 0.999
    result = precision_recall(real, fake, nhood_size=3, dtype=dtype)
    assert tuple(result) == pytest.approx(expected, abs=1e-12)
    batched = precision_recall(real, fake, nhood_size=3, row_batch_size=17, col_batch_size=11, dtype=dtype)
    assert tuple(batched) == tuple(result)
    assert tuple(precision_recall(real, fake, nhood_size=5, dtype=dtype)) == pytest.approx(
        np_precision_recall(real, fake, k=5), abs=1e-12
    )


def test_precision_recall_rejects_too_small_sets():
    with pytest.raises(ValueError, match="nhood_size"):
        precision_recall(np.zeros((3, 2)), np.ones((10, 2)), nhood_size=3)


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_contains_fd_and_is_reproducible():
    rng = np.random.default_rng(14)
    real, fake = gaussian(rng, 1500, 4), gaussian(rng, 1500, 4, shift=0.5, scale=1.2)
    ci = bootstrap_ci(frechet_distance_from_features, real, fake, n_boot=200, alpha=0.05, seed=7)
    assert ci.estimate == pytest.approx(frechet_distance_from_features(real, fake), rel=1e-12)
    assert ci.low < ci.estimate < ci.high
    assert ci.samples.shape == (200,)
    again = bootstrap_ci(frechet_distance_from_features, real, fake, n_boot=200, alpha=0.05, seed=7)
    np.testing.assert_array_equal(again.samples, ci.samples)
    other = bootstrap_ci(frechet_distance_from_features, real, fake, n_boot=200, alpha=0.05, seed=8)
    assert not np.array_equal(other.samples, ci.samples)
    narrower = bootstrap_ci(frechet_distance_from_features, real, fake, n_boot=200, alpha=0.5, seed=7)
    assert ci.low < narrower.low < narrower.high < ci.high


# --------------------------------------------------------------------------- metric names

# (kind, n_samples, n_frames, subsample, nhood), from the data-juicer metric list (seed document).
EXPECTED_NAMES = {
    "fvd2048_16f": ("fvd", 2048, 16, 1, None),
    "fvd2048_128f": ("fvd", 2048, 128, 1, None),
    "fvd2048_128f_subsample8f": ("fvd", 2048, 16, 8, None),
    "kvd2048_16f": ("kvd", 2048, 16, 1, None),
    "isv2048_ucf": ("isv", 2048, 16, 1, None),
    "prv2048_3n_16f": ("prv", 2048, 16, 1, 3),
    "fid50k": ("fid", 50000, 1, 1, None),
    "kid50k": ("kid", 50000, 1, 1, None),
    "is50k": ("is", 50000, 1, 1, None),
    "pr50k_3n": ("pr", 50000, 1, 1, 3),
}


def test_metric_name_parser_covers_all_ten_names():
    assert set(SUPPORTED_METRICS) == set(EXPECTED_NAMES)
    for name, expected in EXPECTED_NAMES.items():
        parsed = parse_metric_name(name)
        assert parsed.as_tuple() == expected, name
        assert parsed.needs_real == (parsed.kind not in ("is", "isv"))
    assert parse_metric_name("fvd2048_128f_subsample8f").frame_span == 128
    assert parse_metric_name("isv2048_ucf").detector == "c3d_ucf101"
    assert parse_metric_name("pr50k_3n").detector == "vgg16"


@pytest.mark.parametrize(
    "name", ["fvd", "fid50k_full", "fvd2048", "foo", "pr50k", "isv2048_16f", "fid50k_16f", "fvd2048_128f_subsample7f"]
)
def test_metric_name_parser_rejects_unknown_names(name):
    with pytest.raises(ValueError, match=name):
        parse_metric_name(name)
    with pytest.raises(ValueError, match=name):
        parse_metric_name(name, allow_custom=True)


def test_metric_name_parser_custom_names_follow_the_grammar():
    assert parse_metric_name("fvd1024_32f", allow_custom=True).as_tuple() == ("fvd", 1024, 32, 1, None)
    with pytest.raises(ValueError, match="unknown metric"):
        parse_metric_name("fvd1024_32f")


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_sample_count_warning(name):
    promised = EXPECTED_NAMES[name][1]
    only_fake = name.startswith("is")
    assert sample_count_warning(name, promised, promised) is None
    assert sample_count_warning(name, promised * 2, promised + 5) is None
    short_fake = sample_count_warning(name, promised, promised - 1)
    assert short_fake is not None and name in short_fake and f"{promised - 1} generated" in short_fake
    short_real = sample_count_warning(name, 10, promised)
    if only_fake:
        assert short_real is None
        assert sample_count_warning(name, None, promised) is None
    else:
        assert short_real is not None and "10 real" in short_real
    with pytest.raises(ValueError):
        sample_count_warning(name + "x", promised, promised)
