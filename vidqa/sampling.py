"""Frame samplers: which frames of a video to decode. Each returns frame indices into the probe."""

from __future__ import annotations

from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vidqa.frames import Frames, decode_frames
from vidqa.probe import VideoProbe


def frame_at_times(probe: VideoProbe, times: np.ndarray) -> np.ndarray:
    """Index of the frame on screen at each time (seconds from the first frame): the last
    frame whose timestamp is at or before it."""
    rel = probe.frame_times - probe.frame_times[0]
    idx = np.searchsorted(rel, np.asarray(times, dtype=np.float64) + 1e-9, side="right") - 1
    return np.clip(idx, 0, probe.frame_count - 1)


def uniform_indices(probe: VideoProbe, n: int) -> np.ndarray:
    """data-juicer's uniform sampling: ``duration/2`` for one frame, else ``i*duration/(n-1)``.

    Asking for more frames than exist returns each existing frame once.
    """
    if n <= 0:
        raise ValueError("n must be positive")
    if n == 1:
        times = np.array([probe.duration_s / 2.0])
    else:
        times = np.arange(n, dtype=np.float64) * probe.duration_s / (n - 1)
    return np.unique(frame_at_times(probe, times))


class SamplingSpec(BaseModel):
    """How to choose frames. Scorers with equal specs share one decode of each video."""

    model_config = ConfigDict(frozen=True)

    method: Literal["uniform"] = Field("uniform", description="Frame sampling method.")
    n: int = Field(16, ge=1, le=10_000, description="Number of frames for uniform sampling.")
    max_size: Optional[int] = Field(
        None, ge=16, description="Downscale during decode so the longer side is at most this."
    )

    def indices(self, probe: VideoProbe) -> np.ndarray:
        return uniform_indices(probe, self.n)

    def sample(self, path: str, probe: VideoProbe) -> Frames:
        return decode_frames(path, probe, self.indices(probe), max_size=self.max_size)


def sample_frames_uniform(path: str, probe: VideoProbe, n: int, max_size: Optional[int] = None) -> Frames:
    return SamplingSpec(method="uniform", n=n, max_size=max_size).sample(path, probe)
