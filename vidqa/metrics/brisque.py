"""BRISQUE (Mittal, Moorthy and Bovik 2012), no-reference image quality: natural-scene
statistics of mean-subtracted contrast-normalised (MSCN) luminance, scored by a support vector
regressor trained on human opinion scores. Lower is better (about 0 to 100).

As the ``brisque`` package computes it (its trained regressor is the model used here, so its
features must be the ones it was trained on), in float64:

1. :math:`I` = luma in [0, 1] (scikit-image's ``rgb2gray``: 0.2125 R + 0.7154 G + 0.0721 B).
2. MSCN :math:`\\hat I = (I - \\mu) / (\\sigma + 1/255)` with :math:`\\mu = w * I`,
   :math:`\\sigma = \\sqrt{|\\mu^2 - w * I^2|}`, :math:`w` the normalised 7x7 Gaussian of
   sigma 7/6 and :math:`*` a 'same' convolution over zeros outside the frame. Coefficients
   within 1e-10 of 0 are 0: in a flat area the package leaves their sign to its convolution's
   rounding, which moves the score of a letterboxed frame by several points.
3. Products of neighbours: horizontal :math:`\\hat I(i,j)\\hat I(i,j+1)`, vertical, main and
   secondary diagonal.
4. An asymmetric generalised Gaussian fit of each of the five arrays :math:`x`:
   :math:`\\sigma_l^2 = \\overline{x^2}_{x<0}`, :math:`\\sigma_r^2 = \\overline{x^2}_{x\\ge0}`,
   :math:`\\gamma = \\sigma_l/\\sigma_r`, :math:`\\hat r = \\overline{|x|}^2/\\overline{x^2}`,
   :math:`\\hat R = \\hat r(\\gamma^3+1)(\\gamma+1)/(\\gamma^2+1)^2`, and :math:`\\alpha` the root
   of :math:`\\Gamma(2/\\alpha)^2/(\\Gamma(1/\\alpha)\\Gamma(3/\\alpha)) = \\hat R`; the mean
   :math:`\\eta = (\\sigma_r-\\sigma_l)\\,\\Gamma(2/\\alpha)/\\Gamma(1/\\alpha)
   \\sqrt{\\Gamma(1/\\alpha)/\\Gamma(3/\\alpha)}`. Features: MSCN :math:`(\\alpha,
   (\\sigma_l^2+\\sigma_r^2)/2)`, each product :math:`(\\alpha, \\eta, \\sigma_l^2, \\sigma_r^2)`.
5. The same 18 features on the frame halved (OpenCV bicubic), 36 in all, each scaled to
   [-1, 1] by the model's ranges, then the RBF regressor:
   :math:`\\sum_i c_i e^{-g\\lVert f - s_i\\rVert^2} - \\rho`.

A frame with no contrast at some scale (a flat frame) has no MSCN statistics: its score is
undefined (:class:`BrisqueUndefined`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KERNEL_SIZE = 7
KERNEL_SIGMA = 7 / 6
MSCN_C = 1 / 255
FLAT_MSCN = 1e-10
RGB2GRAY = np.array([0.2125, 0.7154, 0.0721])  # scikit-image's rgb2gray (ITU-R 709 luma)
_ALPHA_BRACKET = (0.02, 100.0)  # phi(alpha) rises from ~0 to 0.75 over it


class BrisqueUndefined(ValueError):
    """The frame's statistics have no fit (no contrast)."""


@dataclass(frozen=True)
class BrisqueModel:
    """The trained regressor: feature ranges ``(36,)`` and the RBF support vectors."""

    feature_min: np.ndarray
    feature_max: np.ndarray
    support_vectors: np.ndarray  # (n_sv, 36)
    coefficients: np.ndarray  # (n_sv,)
    gamma: float
    rho: float

    def predict(self, features: np.ndarray) -> float:
        scaled = -1.0 + 2.0 * (features - self.feature_min) / (self.feature_max - self.feature_min)
        distances = ((self.support_vectors - scaled) ** 2).sum(axis=1)
        return float(self.coefficients @ np.exp(-self.gamma * distances) - self.rho)


def gray(rgb: np.ndarray) -> np.ndarray:
    """scikit-image's ``rgb2gray`` of a uint8 RGB frame: float64 luma in [0, 1]."""
    return (rgb.astype(np.float64) / 255.0) @ RGB2GRAY


def _gaussian_1d() -> np.ndarray:
    # The 2-D kernel exp(-(x^2+y^2)/2s^2), normalised, is the outer product of this one.
    x = np.arange(KERNEL_SIZE) - KERNEL_SIZE // 2
    g = np.exp(-(x.astype(np.float64) ** 2) / (2 * KERNEL_SIGMA**2))
    return g / g.sum()


def _blur(image: np.ndarray) -> np.ndarray:
    from scipy.ndimage import convolve1d

    g = _gaussian_1d()
    return convolve1d(convolve1d(image, g, axis=0, mode="constant"), g, axis=1, mode="constant")


def mscn(image: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients of a float64 luma image."""
    mu = _blur(image)
    sigma = np.sqrt(np.abs(mu**2 - _blur(image**2)))
    out = (image - mu) / (sigma + MSCN_C)
    # In a flat area the MSCN is 0 up to rounding, and the rounding's sign would decide on
    # which side of the asymmetric fit those pixels fall (a letterbox moves the score by
    # several points). On the shared videos the residue stays below 1e-12 and every real
    # coefficient is above 1e-9 (tests/test_iqa.py).
    out[np.abs(out) < FLAT_MSCN] = 0.0
    return out


def pair_products(m: np.ndarray) -> list[np.ndarray]:
    """The MSCN array and its horizontal, vertical, main- and secondary-diagonal neighbour products."""
    return [m, m[:, :-1] * m[:, 1:], m[:-1, :] * m[1:, :], m[:-1, :-1] * m[1:, 1:], m[1:, :-1] * m[:-1, 1:]]


def _phi(alpha: float) -> float:
    from scipy.special import gammaln

    return float(np.exp(2 * gammaln(2 / alpha) - gammaln(1 / alpha) - gammaln(3 / alpha)))


def aggd_fit(x: np.ndarray) -> tuple[float, float, float, float]:
    """Asymmetric generalised Gaussian fit of ``x``: ``(alpha, mean, sigma_l, sigma_r)``."""
    from scipy.optimize import brentq
    from scipy.special import gammaln

    x = x.ravel()
    left, right = x[x < 0], x[x >= 0]
    square_mean = float(np.mean(x**2))
    if left.size == 0 or right.size == 0 or square_mean == 0:
        raise BrisqueUndefined("no contrast: the MSCN coefficients are all of one sign or zero")
    sigma_l, sigma_r = float(np.sqrt(np.mean(left**2))), float(np.sqrt(np.mean(right**2)))
    if sigma_r == 0:
        raise BrisqueUndefined("no contrast: the MSCN coefficients are all of one sign or zero")
    g = sigma_l / sigma_r
    r_hat = float(np.mean(np.abs(x))) ** 2 / square_mean
    big_r = r_hat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    lo, hi = _ALPHA_BRACKET
    if not _phi(lo) < big_r < _phi(hi):
        raise BrisqueUndefined(f"no generalised Gaussian fits these statistics (R = {big_r:.4g})")
    alpha = brentq(lambda a: _phi(a) - big_r, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps)
    mean = (sigma_r - sigma_l) * np.exp(gammaln(2 / alpha) - gammaln(1 / alpha)) * np.exp(
        0.5 * (gammaln(1 / alpha) - gammaln(3 / alpha)))
    return float(alpha), float(mean), sigma_l, sigma_r


def scale_features(image: np.ndarray) -> np.ndarray:
    """The 18 features of one scale."""
    out: list[float] = []
    for k, coefficients in enumerate(pair_products(mscn(image))):
        alpha, mean, sigma_l, sigma_r = aggd_fit(coefficients)
        if k == 0:
            out += [alpha, (sigma_l**2 + sigma_r**2) / 2]
        else:
            out += [alpha, mean, sigma_l**2, sigma_r**2]
    return np.array(out, dtype=np.float64)


def brisque_features(rgb: np.ndarray) -> np.ndarray:
    """The 36 BRISQUE features of a uint8 RGB frame ``(H, W, 3)``."""
    import cv2

    if min(rgb.shape[:2]) < 2 * KERNEL_SIZE:
        raise BrisqueUndefined(f"a {rgb.shape[1]}x{rgb.shape[0]} frame is too small: BRISQUE's half-size scale "
                               f"needs {KERNEL_SIZE}x{KERNEL_SIZE} neighbourhoods")
    luma = gray(rgb)
    half = cv2.resize(luma, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
    return np.concatenate([scale_features(luma), scale_features(half)])


def brisque(rgb: np.ndarray, model: BrisqueModel) -> float:
    """BRISQUE score of a uint8 RGB frame (lower is better). Raises BrisqueUndefined on a
    frame without contrast."""
    return model.predict(brisque_features(rgb))
