"""Technical video metrics that need no model weights.

All functions take RGB uint8 frames ``(N, H, W, 3)`` (or a single ``(H, W, 3)`` frame
where noted) and compute in float64.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# Rec. 709 luma weights, as DataFlow-MM's luminance evaluator and skimage's rgb2gray.
LUMA_709 = np.array([0.2126, 0.7152, 0.0722], dtype=np.float64)


def _as_batch(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) RGB frames, got shape {frames.shape}")
    return frames


def luma(frames: np.ndarray) -> np.ndarray:
    """``Y = 0.2126 R + 0.7152 G + 0.0722 B`` scaled to [0, 1], shape ``(N, H, W)``."""
    return _as_batch(frames).astype(np.float64) @ LUMA_709 / 255.0


def frame_luminance(frames: np.ndarray) -> np.ndarray:
    """Mean luma of each frame, in [0, 1].

    Luma is linear in RGB, so the frame mean is the weighted sum of the channel means;
    summing channels in integers keeps this exact and avoids a float copy of the frames.
    """
    f = _as_batch(frames)
    channel_sums = f.reshape(f.shape[0], -1, 3).sum(axis=1, dtype=np.int64).astype(np.float64)
    return channel_sums @ LUMA_709 / (255.0 * f.shape[1] * f.shape[2])


def luminance_stats(frames: np.ndarray) -> dict[str, float]:
    """``luminance_mean/min/max``: mean, min and max over frames of each frame's mean luma."""
    per_frame = frame_luminance(frames)
    return {
        "luminance_mean": float(per_frame.mean()),
        "luminance_min": float(per_frame.min()),
        "luminance_max": float(per_frame.max()),
    }


def laplacian_variance(frame: np.ndarray) -> float:
    """Sharpness of one frame: variance of the 4-neighbour Laplacian of its luma (0-255 scale).

    ``L = I(x-1,y) + I(x+1,y) + I(x,y-1) + I(x,y+1) - 4 I(x,y)`` with mirrored borders
    (OpenCV's BORDER_REFLECT_101, i.e. ``cv2.Laplacian`` with ``ksize=1``); the score is
    ``Var(L)`` over all pixels. A flat frame scores 0; blur lowers the score.
    """
    y = luma(frame)[0] * 255.0
    kernel = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)
    lap = ndimage.convolve(y, kernel, mode="mirror")
    return float(lap.var())


def sharpness(frames: np.ndarray) -> float:
    """Mean Laplacian variance over frames."""
    return float(np.mean([laplacian_variance(f) for f in _as_batch(frames)]))


def mse_dyn(frames: np.ndarray, step: int = 1) -> float:
    """VideoScore's MSE-dyn: mean over consecutive pairs of ``frames[::step]`` of
    ``sum((A - B)^2) / (H * W)`` on 0-255 RGB (the channel sum, as VideoScore computes it).

    Higher means more change between frames. Needs at least two frames.
    """
    f = _as_batch(frames)[::step]
    if f.shape[0] < 2:
        raise ValueError("mse_dyn needs at least two frames")
    # Integer arithmetic: exact, and a fraction of the memory traffic of float64 copies.
    per_pair = [
        int(np.square(f[i + 1].astype(np.int32) - f[i].astype(np.int32)).sum(dtype=np.int64))
        for i in range(f.shape[0] - 1)
    ]
    return float(np.mean(per_pair) / (f.shape[1] * f.shape[2]))


class _LocalStats:
    """A grey image's local means and second moments over the SSIM window, computed once."""

    def __init__(self, image: np.ndarray, win_size: int = 7):
        self.image = np.asarray(image, dtype=np.float64)
        if min(self.image.shape) < win_size:
            raise ValueError(f"images smaller than the {win_size}x{win_size} SSIM window")
        self.win_size = win_size
        self.mean = self.filter(self.image)
        self.sq = self.filter(self.image * self.image)

    def filter(self, x: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter(x, size=self.win_size, mode="reflect")


def _ssim_from_stats(a: _LocalStats, b: _LocalStats, data_range: float) -> float:
    npix = a.win_size**2
    cov_norm = npix / (npix - 1)
    ux, uy = a.mean, b.mean
    vx = cov_norm * (a.sq - ux * ux)
    vy = cov_norm * (b.sq - uy * uy)
    vxy = cov_norm * (a.filter(a.image * b.image) - ux * uy)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    pad = (a.win_size - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean())


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, win_size: int = 7) -> float:
    """Mean structural similarity of two grey images (Wang et al. 2004), skimage's defaults.

    Local statistics over a ``win_size`` x ``win_size`` uniform window with sample
    covariance (``N/(N-1)``), ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``::

        SSIM = ((2 mu_a mu_b + C1)(2 s_ab + C2)) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2))

    averaged over the image without a border of ``(win_size - 1) / 2`` pixels.
    """
    if np.shape(a) != np.shape(b):
        raise ValueError("images differ in shape")
    return _ssim_from_stats(_LocalStats(a, win_size), _LocalStats(b, win_size), data_range)


def _pairwise_ssim(frames: np.ndarray, step: int) -> float:
    f = _as_batch(frames)[::step]
    if f.shape[0] < 2:
        raise ValueError("SSIM over time needs at least two frames")
    values = []
    prev = _LocalStats(luma(f[0])[0])
    for frame in f[1:]:
        cur = _LocalStats(luma(frame)[0])
        values.append(_ssim_from_stats(prev, cur, 1.0))
        prev = cur
    return float(np.mean(values))


def ssim_sim(frames: np.ndarray) -> float:
    """VideoScore's SSIM-sim (temporal consistency): mean SSIM of each adjacent frame pair."""
    return _pairwise_ssim(frames, 1)


def ssim_dyn(frames: np.ndarray, step: int = 1) -> float:
    """VideoScore's SSIM-dyn (dynamic degree): mean SSIM of adjacent pairs of ``frames[::step]``.

    VideoScore steps by 4 over every frame; vidqa applies ``step`` to the sampled frames.
    Both SSIM metrics use the full luma range (``data_range = 1``) where VideoScore used
    the second frame's ``max - min``, which is undefined for a flat frame.
    """
    return _pairwise_ssim(frames, step)
