"""Motion: dense optical flow between consecutive sampled frames (data-juicer's
``video_motion_score_filter``, the same in DataFlow-MM's ``VideoMotionScoreFilter``).

For frames :math:`f_0 .. f_{n-1}` (RGB uint8, already sampled), each pair
:math:`(f_{k-1}, f_k)` gets OpenCV's Farnebäck flow on the grayscale frames (``pyr_scale
0.5, levels 3, winsize 15, iterations 3, poly_n 5, poly_sigma 1.2, flags 0``) and its motion

.. math:: m_k = \\frac{1}{HW} \\sum_{x} \\lVert \\mathrm{flow}_k(x) \\rVert_2

in pixels per sampled step (divided by the frame diagonal :math:`\\sqrt{H^2+W^2}` when
``relative``). The clip's motion score is the mean of :math:`m_k` over pairs (float64).
"""

from __future__ import annotations

import numpy as np

FARNEBACK = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2, "flags": 0}


def gray(frame: np.ndarray) -> np.ndarray:
    """OpenCV's luma (0.299 R + 0.587 G + 0.114 B, rounded), what data-juicer's
    ``cvtColor(frame, COLOR_BGR2GRAY)`` gives for the same picture read as BGR."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def farneback_pair_motion(frames: np.ndarray, relative: bool = False) -> np.ndarray:
    """Mean flow magnitude of each consecutive pair of ``frames`` ``(N, H, W, 3)`` uint8:
    ``(N - 1,)`` float64 (empty for fewer than two frames)."""
    import cv2

    out = np.zeros(max(len(frames) - 1, 0), dtype=np.float64)
    previous = gray(frames[0]) if len(frames) else None
    for k in range(1, len(frames)):
        current = gray(frames[k])
        flow = cv2.calcOpticalFlowFarneback(previous, current, None, **FARNEBACK)
        magnitude = np.hypot(flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64))
        out[k - 1] = magnitude.mean()
        previous = current
    return relative_to_diagonal(out, frames.shape[1:3]) if relative else out


def relative_to_diagonal(pair_motion: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pair motion in pixels over the frame diagonal :math:`\\sqrt{H^2+W^2}` of ``size`` ``(H, W)``."""
    return pair_motion / np.hypot(*size)


def motion_summary(pair_motion: np.ndarray, still_below: float) -> dict[str, float]:
    """The clip's mean and max pair motion, and the share of pairs below ``still_below``."""
    if pair_motion.size == 0:
        raise ValueError("motion needs at least two frames")
    return {"motion_mean": float(pair_motion.mean()), "motion_max": float(pair_motion.max()),
            "motion_still_share": float((pair_motion < still_below).mean())}
