"""Set-level distribution metrics over detector features: FD (FID/FVD), KID/KVD, IS/ISV and
improved precision/recall (PR/PRV), with the StyleGAN2-ADA / StyleGAN-V conventions that
REFERENCE.md section 5 fixes. Pure math: no I/O, no detectors, no downloads.

Inputs are feature matrices ``(N, D)`` (one row per frame or clip), numpy arrays or torch
tensors; everything that matters numerically runs in float64. The metric names of data-juicer
(``fvd2048_16f``, ``fid50k``, ...) are parsed by :func:`parse_metric_name`.

Conventions (each one recorded beside a stored value, since FVD numbers are only comparable
under the same ones):

* Covariance: **biased, divided by N** (``ddof=0``), as StyleGAN-V/StyleGAN2-ADA
  ``FeatureStats.get_mean_cov`` (``raw_cov / num_items - outer(mean, mean)``; REFERENCE 5,
  "covariance divided by N"). pytorch-fid and torchmetrics use ``np.cov``/``N - 1``
  (``ddof=1``); :meth:`FeatureStats.cov` takes ``ddof`` to reproduce them.
* KID is returned **raw** (as StyleGAN2-ADA/StyleGAN-V code and data-juicer return it);
  papers often print KID x 1000. :func:`kernel_inception_distance` takes a ``scale`` and
  records it in its result.
* IS splits are contiguous slices of the given order (no shuffling, as StyleGAN2-ADA), their
  std is the population std (``np.std``, ``ddof=0``); ``0 log 0 = 0``.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional

import numpy as np
import scipy.linalg
import scipy.special
import torch

COVARIANCE_DDOF = 0
"""Default covariance convention: divide by N (StyleGAN-V ``get_mean_cov``)."""

KID_PAPER_SCALE = 1000.0
"""Factor papers (e.g. StyleGAN2-ADA's tables) apply to KID before printing it."""


def _as_float64(x: Any, name: str, ndim: int | None = None) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().to(torch.float64).numpy()
    array = np.asarray(x, dtype=np.float64)
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {array.shape}")
    return array


def _features(x: Any, name: str) -> np.ndarray:
    array = _as_float64(x, name, ndim=2)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains non-finite values")
    return array


# --------------------------------------------------------------------------- feature statistics


class FeatureStats:
    """Running float64 mean and covariance of feature rows, optionally keeping the rows.

    Batches are combined with Chan et al.'s parallel update, in float64::

        n = n_a + n_b,  delta = mean_b - mean_a
        mean = mean_a + delta * n_b / n
        M2 = M2_a + M2_b + outer(delta, delta) * n_a * n_b / n     (M2 = sum (x - mean)(x - mean)^T)

    so ``cov(ddof) = M2 / (n - ddof)``; ``ddof=0`` (default) is StyleGAN-V's biased covariance,
    ``ddof=1`` is ``np.cov``'s. This equals StyleGAN's ``raw_cov / n - outer(mean, mean)``
    without its cancellation.

    ``max_items`` caps the number of rows accepted (later rows are dropped, as StyleGAN's
    ``FeatureStats``); ``capture_all`` keeps the accepted rows (as ``capture_dtype``) for KID
    and PR, so the cap also bounds their memory.
    """

    def __init__(
        self,
        num_features: int | None = None,
        *,
        capture_all: bool = False,
        max_items: int | None = None,
        capture_dtype: np.dtype | type = np.float32,
    ) -> None:
        if max_items is not None and max_items < 1:
            raise ValueError("max_items must be positive (or None)")
        self.num_features = num_features
        self.capture_all = capture_all
        self.max_items = max_items
        self.capture_dtype = np.dtype(capture_dtype)
        self.num_items = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None
        self._captured: list[np.ndarray] = []
        if num_features is not None:
            self._init(num_features)

    def _init(self, num_features: int) -> None:
        self.num_features = num_features
        self._mean = np.zeros(num_features, dtype=np.float64)
        self._m2 = np.zeros((num_features, num_features), dtype=np.float64)

    def _check_width(self, width: int) -> None:
        if self._mean is None:
            self._init(width)
        elif width != self.num_features:
            raise ValueError(f"expected {self.num_features} features per row, got {width}")

    def is_full(self) -> bool:
        return self.max_items is not None and self.num_items >= self.max_items

    def update(self, features: Any) -> int:
        """Add rows ``(B, D)``; returns how many were accepted (fewer once ``max_items`` is hit)."""
        x = _features(features, "features")
        self._check_width(x.shape[1])
        if self.max_items is not None:
            x = x[: max(self.max_items - self.num_items, 0)]
        if x.shape[0] == 0:
            return 0
        batch_mean = x.mean(axis=0)
        centred = x - batch_mean
        self._combine(x.shape[0], batch_mean, centred.T @ centred)
        if self.capture_all:
            self._captured.append(x.astype(self.capture_dtype))
        return x.shape[0]

    def _combine(self, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray) -> None:
        n_a = self.num_items
        n = n_a + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / n)
        self._m2 = self._m2 + m2_b + np.outer(delta, delta) * (n_a * n_b / n)
        self.num_items = n

    def merge(self, other: "FeatureStats") -> "FeatureStats":
        """Fold ``other``'s rows into this one (in place; returns ``self``)."""
        if other.num_items == 0:
            return self
        self._check_width(other.num_features)
        if self.max_items is not None and self.num_items + other.num_items > self.max_items:
            raise ValueError(
                f"merging {other.num_items} rows into {self.num_items} exceeds max_items={self.max_items}"
            )
        if self.capture_all and not other.capture_all:
            raise ValueError("cannot merge stats without captured rows into stats that capture them")
        self._combine(other.num_items, other._mean, other._m2)
        if self.capture_all:
            self._captured.extend(c.astype(self.capture_dtype) for c in other._captured)
        return self

    def _require_items(self, at_least: int) -> None:
        if self.num_items < at_least:
            raise ValueError(f"need at least {at_least} rows, have {self.num_items}")

    def mean(self) -> np.ndarray:
        self._require_items(1)
        return self._mean.copy()

    def cov(self, ddof: int = COVARIANCE_DDOF) -> np.ndarray:
        """``M2 / (N - ddof)``: ``ddof=0`` StyleGAN-V (default), ``ddof=1`` np.cov/torchmetrics."""
        self._require_items(ddof + 1)
        return self._m2 / (self.num_items - ddof)

    def mean_cov(self, ddof: int = COVARIANCE_DDOF) -> tuple[np.ndarray, np.ndarray]:
        return self.mean(), self.cov(ddof)

    def features(self) -> np.ndarray:
        """The captured rows ``(N, D)`` (needs ``capture_all=True``)."""
        if not self.capture_all:
            raise ValueError("rows were not captured: create FeatureStats(capture_all=True)")
        if not self._captured:
            return np.zeros((0, self.num_features or 0), dtype=self.capture_dtype)
        return np.concatenate(self._captured, axis=0)

    def to_npz(self, path) -> None:
        """Arrays only (loadable with ``allow_pickle=False``)."""
        arrays = {
            "num_items": np.int64(self.num_items),
            "num_features": np.int64(-1 if self.num_features is None else self.num_features),
            "max_items": np.int64(-1 if self.max_items is None else self.max_items),
            "capture_dtype": np.str_(self.capture_dtype.str),
            "mean": self._mean if self._mean is not None else np.zeros(0),
            "m2": self._m2 if self._m2 is not None else np.zeros((0, 0)),
        }
        if self.capture_all:
            arrays["features"] = self.features()
        np.savez(path, **arrays)

    @classmethod
    def from_npz(cls, path) -> "FeatureStats":
        with np.load(path, allow_pickle=False) as data:
            num_features = int(data["num_features"])
            max_items = int(data["max_items"])
            stats = cls(
                None if num_features < 0 else num_features,
                capture_all="features" in data.files,
                max_items=None if max_items < 0 else max_items,
                capture_dtype=np.dtype(str(data["capture_dtype"])),
            )
            stats.num_items = int(data["num_items"])
            if stats.num_features is not None:
                stats._mean = np.array(data["mean"], dtype=np.float64)
                stats._m2 = np.array(data["m2"], dtype=np.float64)
            if stats.capture_all and stats.num_items:
                stats._captured = [np.array(data["features"])]
        return stats


def mean_cov(features: Any, ddof: int = COVARIANCE_DDOF) -> tuple[np.ndarray, np.ndarray]:
    """float64 mean and covariance (``ddof=0``: divided by N, StyleGAN-V) of rows ``(N, D)``."""
    stats = FeatureStats()
    stats.update(features)
    return stats.mean_cov(ddof)


# --------------------------------------------------------------------------- Frechet distance


class FrechetDistance(NamedTuple):
    """value = mean_term + trace_term; ``eps_added`` is 0 unless the eps*I retry was needed;
    ``max_imag`` is the largest |imaginary part| of the sqrtm used (dropped);
    ``sqrtm_residual`` is ``||X X - A||_F / ||A||_F`` for that sqrtm; ``raw_value`` is the sum
    before negative rounding error is clamped to 0 (``value = max(raw_value, 0)``)."""

    value: float
    mean_term: float
    trace_term: float
    eps_added: float
    max_imag: float
    sqrtm_residual: float
    sqrt_method: str = "sqrtm"
    raw_value: float = 0.0


def _sqrtm_checked(product: np.ndarray) -> tuple[np.ndarray, float, float]:
    with warnings.catch_warnings():
        # Older SciPy prints/warns about singular matrices; the result is checked below.
        warnings.simplefilter("ignore")
        root = scipy.linalg.sqrtm(product)
    root = np.asarray(root)
    if not np.isfinite(root).all():
        return root, math.inf, math.inf
    max_imag = float(np.abs(root.imag).max()) if np.iscomplexobj(root) else 0.0
    norm = np.linalg.norm(product)
    residual = float(np.linalg.norm(root @ root - product) / norm) if norm > 0 else 0.0
    return root, max_imag, residual


def frechet_distance_with_info(
    mu1: Any,
    sigma1: Any,
    mu2: Any,
    sigma2: Any,
    eps: float = 1e-6,
    *,
    imag_atol: float = 1e-3,
    residual_tol: float = 1e-5,
) -> FrechetDistance:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64::

        FD = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2))

    ``sqrtm`` is ``scipy.linalg.sqrtm`` (Schur method), as StyleGAN-V and pytorch-fid. Guards
    (REFERENCE 5): if the square root is not finite, its imaginary part exceeds ``imag_atol``
    (absolute, in covariance units, pytorch-fid's 1e-3), or its relative residual exceeds
    ``residual_tol`` (a near-singular product), then:

    * for symmetric positive semi-definite covariances (every real covariance; singular when
      there are fewer samples than dimensions) the trace is taken exactly from the symmetric
      form ``Tr sqrtm(S1 S2) = sum_i sqrt(eig_i(S1^1/2 S2 S1^1/2))`` (``sqrt_method='eigh'``),
      which needs no eps and stays accurate where the Schur root does not;
    * otherwise it is recomputed for ``(S1 + eps I)(S2 + eps I)`` as pytorch-fid does
      (``eps_added``); if that is still bad a ``ValueError`` says why.

    The imaginary part left (at most ``imag_atol``) is dropped. Most singular covariances pass
    these checks and take the plain ``sqrtm`` like every library; its rounding can leave a
    slightly negative sum (two identical 2048-d sets: about -1.5e-4), which, FD being a squared
    distance, is clamped to 0 (the sum is kept as ``raw_value``).
    """
    mu1 = _as_float64(mu1, "mu1", ndim=1)
    mu2 = _as_float64(mu2, "mu2", ndim=1)
    sigma1 = _as_float64(sigma1, "sigma1", ndim=2)
    sigma2 = _as_float64(sigma2, "sigma2", ndim=2)
    d = mu1.shape[0]
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            "mean/covariance shapes disagree: "
            f"mu1 {mu1.shape}, sigma1 {sigma1.shape}, mu2 {mu2.shape}, sigma2 {sigma2.shape}"
        )
    for name, a in (("mu1", mu1), ("mu2", mu2), ("sigma1", sigma1), ("sigma2", sigma2)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains non-finite values")

    def acceptable(max_imag: float, residual: float) -> bool:
        return max_imag <= imag_atol and residual <= residual_tol

    eps_added = 0.0
    method = "sqrtm"
    root, max_imag, residual = _sqrtm_checked(sigma1 @ sigma2)
    trace_root: Optional[float] = None
    if not acceptable(max_imag, residual) and _is_psd(sigma1) and _is_psd(sigma2):
        trace_root, method = _trace_sqrt_psd_product(sigma1, sigma2), "eigh"
    elif not acceptable(max_imag, residual):
        offset = np.eye(d) * eps
        retry = _sqrtm_checked((sigma1 + offset) @ (sigma2 + offset))
        if not acceptable(retry[1], retry[2]):
            raise ValueError(
                f"sqrtm(S1 S2) is unusable even with {eps:g}*I added to both covariances: "
                f"max |imag| {retry[1]:.3g} (tolerance {imag_atol:g}), "
                f"relative residual {retry[2]:.3g} (tolerance {residual_tol:g})"
            )
        root, max_imag, residual = retry
        eps_added = eps

    if trace_root is None:
        trace_root = float(np.trace(root).real)
    mean_term = float(np.square(mu1 - mu2).sum())
    trace_term = float(np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root)
    raw = mean_term + trace_term
    if not math.isfinite(raw):
        raise ValueError("Frechet distance is not finite")
    return FrechetDistance(max(raw, 0.0), mean_term, trace_term, eps_added, max_imag, residual, method, raw)


def _is_psd(sigma: np.ndarray, rtol: float = 1e-9) -> bool:
    """Symmetric, with no eigenvalue below ``-rtol * max |eigenvalue|`` (rounding)."""
    scale = float(np.abs(sigma).max()) or 1.0
    if not np.allclose(sigma, sigma.T, rtol=0, atol=rtol * scale):
        return False
    w = np.linalg.eigvalsh((sigma + sigma.T) / 2)
    return bool(w.min() >= -rtol * max(abs(w).max(), 1e-300) * 1e3)


def _trace_sqrt_psd_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``Tr sqrtm(S1 S2)`` for PSD ``S1``, ``S2``: ``S1 S2`` is similar to the PSD matrix
    ``S1^1/2 S2 S1^1/2``, so its root's trace is the sum of the square roots of that matrix's
    (real, non-negative) eigenvalues."""
    w, v = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    half = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    inner = np.linalg.eigvalsh((half @ sigma2 @ half + (half @ sigma2 @ half).T) / 2)
    return float(np.sqrt(np.clip(inner, 0.0, None)).sum())


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, eps: float = 1e-6) -> float:
    """``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2))``; see :func:`frechet_distance_with_info`."""
    return frechet_distance_with_info(mu1, sigma1, mu2, sigma2, eps).value


def frechet_distance_from_features(
    features1: Any, features2: Any, *, ddof: int = COVARIANCE_DDOF, eps: float = 1e-6
) -> float:
    """FD between two feature sets ``(N1, D)``, ``(N2, D)`` (covariance ``ddof`` as :func:`mean_cov`)."""
    mu1, sigma1 = mean_cov(features1, ddof)
    mu2, sigma2 = mean_cov(features2, ddof)
    return frechet_distance(mu1, sigma1, mu2, sigma2, eps)


# --------------------------------------------------------------------------- KID


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``k(x, y) = (x . y / d + 1) ** 3`` for rows of ``x`` ``(m, d)`` and ``y`` ``(n, d)``."""
    d = x.shape[1]
    return (x @ y.T / d + 1.0) ** 3


def unbiased_mmd2(x: Any, y: Any) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel for two sets of the same size ``m``::

        MMD^2 = sum_{i!=j} [k(x_i,x_j) + k(y_i,y_j)] / (m (m-1)) - 2 sum_{i,j} k(x_i,y_j) / m^2

    (StyleGAN2-ADA ``compute_kid`` per subset, before averaging)."""
    x = _features(x, "x")
    y = _features(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"sets must have the same shape, got {x.shape} and {y.shape}")
    m = x.shape[0]
    if m < 2:
        raise ValueError("unbiased MMD needs at least 2 rows per set")
    a = polynomial_kernel(x, x) + polynomial_kernel(y, y)
    b = polynomial_kernel(x, y)
    return float(((a.sum() - np.trace(a)) / (m - 1) - b.sum() * 2 / m) / m)


class KernelDistance(NamedTuple):
    """``mean``/``std`` (population std over subsets) and ``subset_values`` are multiplied by
    ``scale`` (1 = raw KID as StyleGAN code reports it; 1000 = as papers print it)."""

    mean: float
    std: float
    subset_values: np.ndarray
    subset_size: int
    num_subsets: int
    scale: float


def kernel_inception_distance(
    real_features: Any,
    fake_features: Any,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int | np.random.Generator | None = None,
    *,
    scale: float = 1.0,
) -> KernelDistance:
    """KID/KVD exactly as StyleGAN2-ADA ``compute_kid`` (REFERENCE 5)::

        m = min(N_real, N_fake, max_subset_size),  n = D
        per subset: x = fake[choice(N_fake, m, replace=False)], y = real[choice(N_real, m, replace=False)]
                    a = (x x^T / n + 1)^3 + (y y^T / n + 1)^3,   b = (x y^T / n + 1)^3
                    t += (sum a - trace a) / (m - 1) - 2 sum b / m
        KID = t / num_subsets / m

    i.e. the mean over subsets of :func:`unbiased_mmd2`. Indices are drawn from
    ``np.random.default_rng(seed)``, fake before real for each subset. float64 throughout.
    """
    real = _features(real_features, "real_features")
    fake = _features(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature widths differ: real {real.shape[1]}, fake {fake.shape[1]}")
    if num_subsets < 1:
        raise ValueError("num_subsets must be at least 1")
    m = min(real.shape[0], fake.shape[0], max_subset_size)
    if m < 2:
        raise ValueError(f"KID needs at least 2 rows in each set, got subset size {m}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    values = np.empty(num_subsets, dtype=np.float64)
    for s in range(num_subsets):
        x = fake[rng.choice(fake.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        values[s] = unbiased_mmd2(x, y)
    values *= scale
    return KernelDistance(float(values.mean()), float(values.std()), values, m, num_subsets, scale)


# --------------------------------------------------------------------------- Inception score


class InceptionScore(NamedTuple):
    mean: float
    std: float
    split_scores: np.ndarray


def inception_score(probs: Any, num_splits: int = 10, *, sum_atol: float = 1e-3) -> InceptionScore:
    """IS/ISV as StyleGAN2-ADA ``compute_is``, in float64::

        split i = probs[i N // S : (i + 1) N // S]      (contiguous, N = rows given)
        IS_i = exp( mean_x sum_y p(y|x) (log p(y|x) - log p_i(y)) ),  p_i(y) = mean over the split
        result = mean_i IS_i, std_i IS_i (population std)

    with ``0 log 0 = 0`` (StyleGAN would give NaN for an exact zero probability). Rows must be
    probability vectors (non-negative, summing to 1 within ``sum_atol``).
    """
    p = _features(probs, "probs")
    n = p.shape[0]
    if num_splits < 1 or n < num_splits:
        raise ValueError(f"need at least one row per split: {n} rows, {num_splits} splits")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, rtol=0.0, atol=sum_atol):
        raise ValueError("probs rows must be non-negative and sum to 1")
    scores = np.empty(num_splits, dtype=np.float64)
    for i in range(num_splits):
        part = p[i * n // num_splits : (i + 1) * n // num_splits]
        marginal = part.mean(axis=0, keepdims=True)
        kl = scipy.special.xlogy(part, part) - scipy.special.xlogy(part, np.broadcast_to(marginal, part.shape))
        scores[i] = math.exp(kl.sum(axis=1).mean())
    return InceptionScore(float(scores.mean()), float(scores.std()), scores)


# --------------------------------------------------------------------------- precision / recall


class PrecisionRecall(NamedTuple):
    precision: float
    recall: float


def _as_tensor(x: Any, name: str, dtype: torch.dtype, device) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        t = torch.from_numpy(np.ascontiguousarray(np.asarray(x)))
    if t.ndim != 2:
        raise ValueError(f"{name} must be (N, D), got shape {tuple(t.shape)}")
    t = t.to(device=device, dtype=dtype)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains non-finite values")
    return t


def knn_radii(
    manifold: torch.Tensor, nhood_size: int, row_batch_size: int, col_batch_size: int
) -> torch.Tensor:
    """Distance from each manifold point to its ``nhood_size``-th nearest neighbour, self
    excluded: the ``(nhood_size + 1)``-th smallest distance to the manifold (self included,
    as StyleGAN2-ADA's ``kthvalue(nhood_size + 1)``)."""
    k = nhood_size + 1
    radii = []
    for rows in manifold.split(row_batch_size):
        best = None
        for cols in manifold.split(col_batch_size):
            dist = torch.cdist(rows, cols)
            if best is not None:
                dist = torch.cat([best, dist], dim=1)
            best = dist.topk(min(k, dist.shape[1]), dim=1, largest=False).values
        radii.append(best[:, k - 1])
    return torch.cat(radii)


def _inside_any_ball(
    probes: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor, row_batch_size: int, col_batch_size: int
) -> torch.Tensor:
    inside = []
    for rows in probes.split(row_batch_size):
        hit = torch.zeros(rows.shape[0], dtype=torch.bool, device=rows.device)
        for cols, r in zip(manifold.split(col_batch_size), radii.split(col_batch_size)):
            hit |= (torch.cdist(rows, cols) <= r[None, :]).any(dim=1)
        inside.append(hit)
    return torch.cat(inside)


def precision_recall(
    real_features: Any,
    fake_features: Any,
    nhood_size: int = 3,
    row_batch_size: int = 10000,
    col_batch_size: int = 10000,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
) -> PrecisionRecall:
    """Improved precision and recall (Kynkaanniemi et al. 2019) as StyleGAN2-ADA ``compute_pr``::

        r(m) = Euclidean distance from manifold point m to its k-th nearest neighbour (self excluded)
        precision = share of fake points f with ||f - r_j|| <= r(r_j) for some real point r_j
        recall    = share of real points r with ||r - f_j|| <= r(f_j) for some fake point f_j

    Distances are ``torch.cdist`` in ``dtype`` (StyleGAN uses float16 features; float32 here by
    default, float64 on request) on ``device``, batched over rows and columns
    so memory stays at ``row_batch_size x col_batch_size`` distances. ``device`` defaults to
    ``real_features``' device when it is a tensor.
    """
    if device is None:
        device = real_features.device if isinstance(real_features, torch.Tensor) else torch.device("cpu")
    device = torch.device(device)
    real = _as_tensor(real_features, "real_features", dtype, device)
    fake = _as_tensor(fake_features, "fake_features", dtype, device)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature widths differ: real {real.shape[1]}, fake {fake.shape[1]}")
    if nhood_size < 1:
        raise ValueError("nhood_size must be at least 1")
    if min(real.shape[0], fake.shape[0]) <= nhood_size:
        raise ValueError(f"each set needs more than nhood_size={nhood_size} rows")
    if row_batch_size < 1 or col_batch_size < 1:
        raise ValueError("batch sizes must be positive")
    results = []
    for manifold, probes in ((real, fake), (fake, real)):
        radii = knn_radii(manifold, nhood_size, row_batch_size, col_batch_size)
        inside = _inside_any_ball(probes, manifold, radii, row_batch_size, col_batch_size)
        results.append(float(inside.to(torch.float64).mean()))
    return PrecisionRecall(*results)


# --------------------------------------------------------------------------- bootstrap


class BootstrapInterval(NamedTuple):
    """Point ``estimate`` on the given sets and the percentile interval ``[low, high]``."""

    estimate: float
    low: float
    high: float
    alpha: float
    samples: np.ndarray


def bootstrap_ci(
    fn: Callable[..., float],
    *feature_sets: Any,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int | np.random.Generator | None = None,
) -> BootstrapInterval:
    """Percentile bootstrap interval for ``fn(*feature_sets)``.

    Each replicate resamples every set independently, with replacement, to its own size and
    evaluates ``fn`` on the resamples; the interval is the ``alpha/2`` and ``1 - alpha/2``
    quantiles of the replicates. Set-level metrics are biased by duplicated rows (FD upward),
    so the interval describes sampling spread, not a bias-corrected estimate.
    """
    if not feature_sets:
        raise ValueError("bootstrap_ci needs at least one feature set")
    if n_boot < 1 or not 0.0 < alpha < 1.0:
        raise ValueError("need n_boot >= 1 and 0 < alpha < 1")
    sets = [f if isinstance(f, torch.Tensor) else np.asarray(f) for f in feature_sets]
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    estimate = float(fn(*sets))
    samples = np.empty(n_boot, dtype=np.float64)
    for b in range(n_boot):
        resampled = []
        for f in sets:
            idx = rng.integers(0, len(f), size=len(f))
            resampled.append(f[torch.from_numpy(idx)] if isinstance(f, torch.Tensor) else f[idx])
        samples[b] = float(fn(*resampled))
    low, high = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return BootstrapInterval(estimate, float(low), float(high), alpha, samples)


# --------------------------------------------------------------------------- metric names

SUPPORTED_METRICS = (
    "fvd2048_16f",
    "fvd2048_128f",
    "fvd2048_128f_subsample8f",
    "kvd2048_16f",
    "isv2048_ucf",
    "prv2048_3n_16f",
    "fid50k",
    "kid50k",
    "is50k",
    "pr50k_3n",
)
"""data-juicer's metric names (derived from StyleGAN-V), REFERENCE 5."""

DETECTORS = {
    "fvd": "i3d_kinetics400",
    "kvd": "i3d_kinetics400",
    "prv": "i3d_kinetics400",
    "isv": "c3d_ucf101",
    "fid": "inception_v3_2015_12_05",
    "kid": "inception_v3_2015_12_05",
    "is": "inception_v3_2015_12_05",
    "pr": "vgg16",
}

_VIDEO_KINDS = ("fvd", "kvd", "isv", "prv")
_ISV_FRAMES = 16  # C3D clips (REFERENCE 5: isv2048_ucf, 16 frames)
_NAME = re.compile(
    r"(?P<kind>fvd|kvd|isv|prv|fid|kid|is|pr)(?P<count>\d+)(?P<k>k?)"
    r"(?:_(?P<nhood>\d+)n)?(?:_(?P<frames>\d+)f)?(?:_subsample(?P<sub>\d+)f)?(?:_(?P<ucf>ucf))?"
)


@dataclass(frozen=True)
class MetricName:
    """A parsed metric name. ``n_samples`` is promised per set (real and fake, or fake only
    for IS/ISV); ``n_frames`` is frames per clip fed to the detector (1 for frame metrics);
    ``subsample`` the stride between them (``fvd2048_128f_subsample8f``: 16 frames, every 8th,
    spanning 128); ``nhood`` the k of PR/PRV."""

    name: str
    kind: str
    n_samples: int
    n_frames: int
    subsample: int
    nhood: int | None

    @property
    def family(self) -> str:
        return {"fvd": "frechet", "fid": "frechet", "kvd": "kernel", "kid": "kernel",
                "isv": "inception_score", "is": "inception_score",
                "prv": "precision_recall", "pr": "precision_recall"}[self.kind]  # fmt: skip

    @property
    def detector(self) -> str:
        return DETECTORS[self.kind]

    @property
    def is_video(self) -> bool:
        return self.kind in _VIDEO_KINDS

    @property
    def needs_real(self) -> bool:
        return self.family != "inception_score"

    @property
    def frame_span(self) -> int:
        return self.n_frames * self.subsample

    def as_tuple(self) -> tuple[str, int, int, int, int | None]:
        return (self.kind, self.n_samples, self.n_frames, self.subsample, self.nhood)


def parse_metric_name(name: str, *, allow_custom: bool = False) -> MetricName:
    """``fvd2048_16f`` -> MetricName(kind='fvd', n_samples=2048, n_frames=16, subsample=1, nhood=None).

    Grammar: ``<kind><count>[k][_<k>n][_<frames>f][_subsample<s>f][_ucf]``, where ``k`` multiplies
    the count by 1000 and ``<frames>f_subsample<s>f`` means ``frames / s`` frames taken every
    ``s``-th. Only :data:`SUPPORTED_METRICS` are accepted unless ``allow_custom`` (then any name
    the grammar and the kind's rules allow, e.g. ``fvd1024_16f``)."""
    if not allow_custom and name not in SUPPORTED_METRICS:
        raise ValueError(f"unknown metric {name!r}; supported: {', '.join(SUPPORTED_METRICS)}")
    match = _NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"cannot parse metric name {name!r}; expected e.g. {', '.join(SUPPORTED_METRICS)}")
    kind = match["kind"]
    n_samples = int(match["count"]) * (1000 if match["k"] else 1)
    nhood = int(match["nhood"]) if match["nhood"] else None
    frames = int(match["frames"]) if match["frames"] else None
    sub = int(match["sub"]) if match["sub"] else None

    def bad(reason: str) -> ValueError:
        return ValueError(f"invalid metric name {name!r}: {reason}")

    if n_samples < 1:
        raise bad("sample count must be positive")
    if (nhood is not None) != (kind in ("pr", "prv")):
        raise bad("a neighbourhood size '_<k>n' is required for pr/prv and only for them")
    if nhood is not None and nhood < 1:
        raise bad("neighbourhood size must be positive")
    if (match["ucf"] is not None) != (kind == "isv"):
        raise bad("'_ucf' (the C3D UCF-101 detector) is required for isv and only for it")
    if kind == "isv":
        if frames is not None or sub is not None:
            raise bad("isv takes no frame count (C3D clips are 16 frames)")
        frames = _ISV_FRAMES
    elif kind in _VIDEO_KINDS:
        if frames is None or frames < 1:
            raise bad(f"{kind} needs a positive frame count '_<n>f'")
    elif frames is not None or sub is not None:
        raise bad(f"{kind} is a frame-level metric and takes no frame count")
    else:
        frames = 1
    subsample = 1
    if sub is not None:
        if sub < 1 or frames % sub:
            raise bad(f"subsample {sub} must divide the frame span {frames}")
        subsample = sub
        frames //= sub
    return MetricName(name, kind, n_samples, frames, subsample, nhood)


def sample_count_warning(metric_name: str | MetricName, n_real: int | None, n_fake: int) -> str | None:
    """A warning when fewer samples are available than ``metric_name`` promises (its
    ``<count>`` per set; IS/ISV use only the fake set), else ``None``."""
    metric = metric_name if isinstance(metric_name, MetricName) else parse_metric_name(metric_name)
    short = []
    if n_fake < metric.n_samples:
        short.append(f"{n_fake} generated")
    if metric.needs_real and (n_real or 0) < metric.n_samples:
        short.append(f"{n_real or 0} real")
    if not short:
        return None
    return (
        f"{metric.name} promises {metric.n_samples} samples per set but only "
        f"{' and '.join(short)} are available; the value is not comparable with published "
        f"{metric.name} numbers (set-level estimates depend on the sample count)"
    )


__all__ = [
    "COVARIANCE_DDOF",
    "KID_PAPER_SCALE",
    "SUPPORTED_METRICS",
    "BootstrapInterval",
    "FeatureStats",
    "FrechetDistance",
    "InceptionScore",
    "KernelDistance",
    "MetricName",
    "PrecisionRecall",
    "bootstrap_ci",
    "frechet_distance",
    "frechet_distance_from_features",
    "frechet_distance_with_info",
    "inception_score",
    "kernel_inception_distance",
    "knn_radii",
    "mean_cov",
    "parse_metric_name",
    "polynomial_kernel",
    "precision_recall",
    "sample_count_warning",
    "unbiased_mmd2",
]

