"""Temporal consistency of a clip's frame embeddings (VBench's background consistency, on
CLIP): how alike consecutive frames look to the encoder.

For unit frame embeddings :math:`e_0 .. e_{n-1}` (float64 here):

.. math::

    \\mathrm{adjacent} = \\frac{1}{n-1} \\sum_{i=1}^{n-1} e_{i-1} \\cdot e_i

    \\mathrm{vbench} = \\frac{1}{n-1} \\sum_{i=1}^{n-1}
        \\frac{\\max(0, e_{i-1} \\cdot e_i) + \\max(0, e_0 \\cdot e_i)}{2}

the second exactly as VBench's ``background_consistency`` scores one video (Vchitect/VBench,
``vbench/background_consistency.py``: each frame against the one before and the first, each
cosine clamped at 0; 1.0 for a single frame).
"""

from __future__ import annotations

import torch


def adjacent_similarity(embeddings: torch.Tensor) -> float:
    """Mean cosine of consecutive unit embeddings ``(n, D)``; needs ``n >= 2``."""
    e = embeddings.to(torch.float64)
    if e.shape[0] < 2:
        raise ValueError("temporal consistency needs at least two frames")
    return float((e[:-1] * e[1:]).sum(dim=1).mean())


def vbench_background_consistency(embeddings: torch.Tensor) -> float:
    """VBench's per-video background consistency over unit embeddings ``(n, D)``."""
    e = embeddings.to(torch.float64)
    if e.shape[0] < 2:
        return 1.0
    previous = (e[:-1] * e[1:]).sum(dim=1).clamp(min=0)
    first = (e[:1] * e[1:]).sum(dim=1).clamp(min=0)
    return float(((previous + first) / 2).mean())
