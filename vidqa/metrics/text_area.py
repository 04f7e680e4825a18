"""On-screen text area (data-juicer's ``video_ocr_area_ratio_filter``): per frame, the summed
area of the detected text boxes over the frame's area,

.. math:: r = \\frac{1}{WH} \\sum_b \\mathrm{area}(b)

each box a quadrilateral (area by the shoelace formula, what data-juicer's two triangles give
for a convex box). Overlapping boxes count twice, as there; the clip's value is the mean (and
max) over its sampled frames.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def polygon_area(points: np.ndarray) -> float:
    """Area of a simple polygon ``(n, 2)`` (shoelace, float64)."""
    x, y = np.asarray(points, dtype=np.float64).T
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def text_area_ratio(boxes: Sequence[np.ndarray], width: int, height: int) -> float:
    return sum(polygon_area(b) for b in boxes) / float(width * height)
