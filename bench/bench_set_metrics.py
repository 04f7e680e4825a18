"""Set-level metric throughput: FVD clip features with vidqa's targeted decoding against a
decode-everything loop (how a simple implementation, and data-juicer's dataset, read videos),
in the same process, with identical detector inputs; plus the cost of the math (Frechet
distance, KID, PR) at the real feature widths.

The detector is a tiny random I3D stand-in with the real call signature (tests/detector_fixtures),
so the table measures decoding and batching, not I3D's convolutions; no download.

    python bench/bench_set_metrics.py [--videos 12] [--frames 300] [--out bench/results/set_metrics_cpu.md]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from detector_fixtures import write_tiny_detectors  # noqa: E402
from vidqa.metrics import distribution as dist  # noqa: E402
from vidqa.models.detectors import load_detector  # noqa: E402
from vidqa.video.probe import probe_video  # noqa: E402
from vidqa.sets.features import FeatureSpec, extract_features  # noqa: E402
from vidqa.sets.members import SetMember  # noqa: E402
from vidqa.sets.sampling import clip_frame_indices, member_rng  # noqa: E402
from vidqa.storage import Storage  # noqa: E402
from vidqa.storage.local import local_content_id  # noqa: E402

H, W, N_FRAMES = 240, 320, 16


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def make_videos(folder: Path, n: int, frames: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"v{i:03d}.mp4"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                        "testsrc2=size=640x360:rate=25", "-frames:v", str(frames), "-vf", f"hue=h={i * 29}",
                        "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", "48", str(path)], check=True)
        paths.append(path)
    return paths


def decode_everything(path: Path) -> np.ndarray:
    """Every frame at the metric's size, in one ffmpeg pass (the baseline's reader)."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-vf", f"scale={W}:{H}:flags=area",
                          "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, H, W, 3)


def baseline(members: list[SetMember], detector, seed: int) -> np.ndarray:
    rows = []
    for m in members:
        frames = decode_everything(Path(m.uri))
        idx = clip_frame_indices(len(frames), N_FRAMES, 1, "random", member_rng(seed, m.key))
        rows.append(detector(frames[idx][None]))
    return np.concatenate(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--frames", default="250,1500", help="comma-separated video lengths in frames (25 fps)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vidqa-bench-sets-"))
    os.environ["VIDQA_DETECTORS_DIR"] = str(write_tiny_detectors(tmp / "det"))
    detector = load_detector("i3d_kinetics400")
    lines = [f"Machine: {os.cpu_count()} CPU cores. Each set: {args.videos} videos, 640x360 h264 at 25 fps "
             f"(GOP 48); one random {N_FRAMES}-frame clip per video, resized to {W}x{H}; tiny I3D stand-in.", "",
             "| video length | contender | clips | wall s | clips/s | peak RSS GiB | speed-up |",
             "|---|---|---|---|---|---|---|"]
    for frames in (int(f) for f in args.frames.split(",")):
        paths = make_videos(tmp / f"videos{frames}", args.videos, frames)
        members = [SetMember(str(p), local_content_id(str(p))) for p in paths]
        spec = FeatureSpec(detector.name, detector.sha256, "features", "clip", N_FRAMES, 1, "random", H, W,
                           len(members), 0)
        for p in paths:  # warm the page cache for both contenders
            probe_video(str(p))
        length = f"{frames} frames ({frames / 25:.0f} s)"
        t = time.perf_counter()
        base = baseline(members, detector, spec.seed)
        base_s = time.perf_counter() - t
        lines.append(f"| {length} | decode every frame, pick the clip (baseline) | {len(base)} | {base_s:.2f} | "
                     f"{len(base) / base_s:.2f} | {rss_gib():.2f} | 1.00x |")
        for workers in (1, 4):
            t = time.perf_counter()
            ex = extract_features(members, spec, detector, Storage(), workers=workers)
            s = time.perf_counter() - t
            ours = ex.stats.features()
            order = [next(i for i, m in enumerate(members) if m.uri == u) for u in ex.sample_uris]
            diff = float(np.abs(ours - base[order]).max())
            lines.append(f"| {length} | vidqa extract_features, {workers} decode worker(s) | {len(ours)} | {s:.2f} | "
                         f"{len(ours) / s:.2f} | {rss_gib():.2f} | {base_s / s:.2f}x (max feature diff {diff:.1e}) |")

    lines += ["", "Math at the real feature widths (float64, random features):", "",
              "| computation | size | wall s |", "|---|---|---|"]
    rng = np.random.default_rng(0)
    for d, n in ((400, 2048), (2048, 10000)):
        x, y = rng.normal(size=(n, d)), rng.normal(size=(n, d)) + 0.1
        t = time.perf_counter()
        mu1, s1 = dist.mean_cov(x)
        mu2, s2 = dist.mean_cov(y)
        cov_s = time.perf_counter() - t
        t = time.perf_counter()
        info = dist.frechet_distance_with_info(mu1, s1, mu2, s2)
        lines.append(f"| mean/cov of two sets | {n} x {d} | {cov_s:.2f} |")
        lines.append(f"| Frechet distance ({info.sqrt_method}) | {d} x {d} | {time.perf_counter() - t:.2f} |")
        t = time.perf_counter()
        dist.kernel_inception_distance(x, y, 100, 1000, seed=0)
        lines.append(f"| KID, 100 subsets of 1000 | {n} x {d} | {time.perf_counter() - t:.2f} |")
    x, y = rng.normal(size=(10000, 4096)).astype(np.float32), rng.normal(size=(10000, 4096)).astype(np.float32)
    t = time.perf_counter()
    dist.precision_recall(x, y, 3)
    lines.append(f"| precision/recall k=3 | 10000 x 4096 | {time.perf_counter() - t:.2f} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text("# Set-level metric benchmark\n\n`python bench/bench_set_metrics.py`\n\n" + text + "\n")


if __name__ == "__main__":
    main()
