"""Which clips and frames of a video set feed a set-level metric (StyleGAN-V's rules, made
deterministic per video).

Video metrics (FVD, KVD, PRV, ISV) take one clip per video: ``n_frames`` frames, every
``subsample``-th, in decoded (presentation) order.

* **Short videos are skipped**, as StyleGAN-V's ``discard_short_videos``: a video (or clip
  span) with fewer than ``n_frames * subsample`` frames gives no clip and is counted as
  *short*. It is never padded, looped or resampled.
* **Offset**: ``random`` draws the first frame uniformly from
  ``0 .. available - (n_frames - 1) * subsample - 1`` (StyleGAN-V's
  ``randint(0, available - n*s + s - 1)``, used for real data); ``start`` takes frame 0
  (StyleGAN-V's generated-video datasets, ``load_n_consecutive_random_offset=False``).
* **Which videos**: when more videos qualify than the metric's sample count, a seeded random
  subset (the first ``count`` of a seeded permutation that qualify), never the first N.

Frame metrics (FID, KID, IS, PR) take up to ``count`` frames drawn uniformly without
replacement from all frames of all videos (data-juicer took the first N frames).

Randomness is per video: the offset of a video's clip comes from a generator seeded by the
run seed and the video's content identity, so adding a video to a set does not move the
clips of the others, and equal content gives equal clips. This holds across roles too: a
video present in both the reference and a randomly-offset candidate gets the same clip under
the same seed (a set compared with itself is exactly 0), so a candidate that overlaps its
reference looks closer than independent draws would make it; use another ``--seed`` for
the candidate run, or the default ``start`` offset, when that matters.
"""

from __future__ import annotations

import hashlib
from typing import Literal, Optional, Sequence

import numpy as np

Offset = Literal["random", "start"]

SAMPLING_RULES_VERSION = 1
"""Bumped whenever a rule above changes: it is part of every feature set's identity."""


def member_rng(seed: int, member_key: str) -> np.random.Generator:
    """A generator for one video, from the run seed and the video's identity."""
    digest = hashlib.sha256(member_key.encode("utf-8")).digest()
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int.from_bytes(digest[:8], "little")])


def min_clip_frames(n_frames: int, subsample: int) -> int:
    """Frames a video needs to give a clip (shorter ones are skipped)."""
    return n_frames * subsample


def clip_frame_indices(
    available: int, n_frames: int, subsample: int, offset: Offset, rng: Optional[np.random.Generator] = None
) -> Optional[np.ndarray]:
    """Frame indices (relative to the span start) of the clip taken from a span of
    ``available`` frames, or ``None`` when the span is too short."""
    if n_frames < 1 or subsample < 1:
        raise ValueError("n_frames and subsample must be positive")
    if available < min_clip_frames(n_frames, subsample):
        return None
    if offset == "start":
        start = 0
    elif offset == "random":
        if rng is None:
            raise ValueError("a random offset needs a generator")
        start = int(rng.integers(0, available - (n_frames - 1) * subsample))
    else:
        raise ValueError(f"offset must be 'random' or 'start', not {offset!r}")
    return start + np.arange(n_frames, dtype=np.int64) * subsample


def selection_order(n_members: int, seed: int) -> np.ndarray:
    """The seeded order in which members are tried until enough clips are taken."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5E7]).permutation(n_members)


def choose_frames(frame_counts: Sequence[int], count: int, seed: int) -> list[np.ndarray]:
    """For each member, the sorted frame indices drawn for a frame metric: ``min(count, total)``
    frames uniformly without replacement over all frames of all members."""
    counts = np.asarray(frame_counts, dtype=np.int64)
    if (counts < 0).any():
        raise ValueError("frame counts must be >= 0")
    total = int(counts.sum())
    take = min(int(count), total)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0xF4A])
    flat = np.sort(rng.choice(total, size=take, replace=False)) if take else np.zeros(0, np.int64)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return [flat[(flat >= lo) & (flat < hi)] - lo for lo, hi in zip(bounds[:-1], bounds[1:])]


__all__ = [
    "Offset", "SAMPLING_RULES_VERSION", "choose_frames", "clip_frame_indices", "member_rng",
    "min_clip_frames", "selection_order",
]
