"""PIQE (Venkatanath et al. 2015), perception-based no-reference image quality: no training, a
block-wise count of distorted blocks among the spatially active ones. 0 (excellent) to 100 (bad;
also the score of a flat frame).

As MATLAB's ``piqe`` defines it, following its Python port ``pypiqe`` step by step, in float64
and over all blocks at once:

1. Luma :math:`Y` (OpenCV's 0.299 R + 0.587 G + 0.114 B, rounded to uint8, as MATLAB's
   ``rgb2gray``), padded (symmetric, bottom and right) to whole 16x16 blocks, rescaled to
   :math:`\\mathrm{round}(255\\,Y/\\max Y)`.
2. MSCN :math:`\\hat Y = (Y-\\mu)/(\\sigma+1)`: :math:`\\mu` and :math:`\\mu_2` the 7x7 Gaussian
   (sigma 7/6, replicated borders) blurs of :math:`Y` and :math:`Y^2`,
   :math:`\\sigma=\\sqrt{|\\mu_2-\\mu^2|}`.
3. Per block: variance :math:`v` (sample, ddof 1). Active when :math:`v > 0.1`.
4. An active block is *impaired* (noticeable artifact) when any 6-pixel run along one of its
   four edges has a sample standard deviation below 0.1; it is *noisy* when
   :math:`\\sqrt v > 2\\beta`, :math:`\\beta = |\\sqrt v - r|/\\max(\\sqrt v, r)`, with :math:`r`
   the standard deviation of the block's two centre columns (8 and 9 of 16) over that of the
   rest. The rest is taken as pypiqe takes it: the block without columns 8 and 10 (pypiqe deletes
   column 8, then the 9th of what remains); r is 0 when undefined.
5. :math:`\\mathrm{PIQE} = 100\\,(1 + \\sum_{\\text{active}} [\\text{impaired}](1-v) +
   [\\text{noisy}]\\,v) / (1 + N_{\\text{active}})`.
"""

from __future__ import annotations

import numpy as np

BLOCK = 16
ACTIVITY_THRESHOLD = 0.1
IMPAIRED_THRESHOLD = 0.1
SEGMENT = 6


def gray(rgb: np.ndarray) -> np.ndarray:
    """MATLAB's ``rgb2gray`` of a uint8 RGB frame (rounded luma, uint8)."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def _padded(luma: np.ndarray) -> np.ndarray:
    rows = -luma.shape[0] % BLOCK
    cols = -luma.shape[1] % BLOCK
    return np.pad(luma, ((0, rows), (0, cols)), mode="symmetric") if rows or cols else luma


def normalized_luma(luma: np.ndarray) -> np.ndarray:
    """Steps 1-2 on a uint8 luma image: the MSCN of the padded, rescaled image (float64)."""
    import cv2

    y = _padded(luma).astype(np.float64)
    y = np.round(255 * (y / y.max()))
    mu = cv2.GaussianBlur(y, (7, 7), 7 / 6, borderType=cv2.BORDER_REPLICATE)
    sigma = np.sqrt(np.abs(cv2.GaussianBlur(y * y, (7, 7), 7 / 6, borderType=cv2.BORDER_REPLICATE) - mu * mu))
    return (y - mu) / (sigma + 1)


def blocks(image: np.ndarray) -> np.ndarray:
    """``(n, 16, 16)`` blocks of an image whose sides are multiples of 16, row by row."""
    h, w = image.shape
    return image.reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).swapaxes(1, 2).reshape(-1, BLOCK, BLOCK)


def _impaired(b: np.ndarray) -> np.ndarray:
    from numpy.lib.stride_tricks import sliding_window_view

    edges = np.stack([b[:, 0, :], b[:, :, BLOCK - 1], b[:, BLOCK - 1, :], b[:, :, 0]], axis=1)  # (n, 4, 16)
    runs = sliding_window_view(edges, SEGMENT, axis=2)  # (n, 4, 11, 6)
    return (runs.std(axis=3, ddof=1) < IMPAIRED_THRESHOLD).any(axis=(1, 2))


def _noisy(b: np.ndarray, variance: np.ndarray) -> np.ndarray:
    centre = np.concatenate([b[:, :, 7], b[:, :, 8]], axis=1)
    rest = np.delete(b, [7, 9], axis=2)  # pypiqe's surround (see the module docstring)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = centre.std(axis=1, ddof=1) / rest.reshape(len(b), -1).std(axis=1, ddof=1)
        ratio = np.where(np.isnan(ratio), 0.0, ratio)
        sigma = np.sqrt(variance)
        beta = np.abs(sigma - ratio) / np.maximum(sigma, ratio)
        return sigma > 2 * beta


def piqe_luma(luma: np.ndarray) -> float:
    """PIQE of a uint8 luma image."""
    if luma.max() == 0:
        return 100.0  # black: no active block (MATLAB's flat-image score)
    b = blocks(normalized_luma(luma))
    variance = b.reshape(len(b), -1).var(axis=1, ddof=1)
    active = variance > ACTIVITY_THRESHOLD
    if not active.any():
        return 100.0
    b, variance = b[active], variance[active]
    distortion = np.where(_impaired(b), 1 - variance, 0.0) + np.where(_noisy(b, variance), variance, 0.0)
    return float((distortion.sum() + 1) / (1 + active.sum()) * 100)


def piqe(rgb: np.ndarray) -> float:
    """PIQE of a uint8 RGB frame ``(H, W, 3)`` (lower is better)."""
    return piqe_luma(gray(rgb))
