"""Frame samplers versus decoding every frame of the same video.

Generates a 720p, 25 fps, 24 s H.264 video (2 s GOP, B-frames) with ffmpeg, then times
each sampler against a full decode (every frame to RGB, the same pipe vidqa uses), on
it and on the shared sample videos. Prints frames/s and the speed-up.

    python bench/bench_sampling.py [--repeat 3] [--out bench/results/sampling.md]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidqa.video.decode import decode_frames  # noqa: E402
from vidqa.video.probe import probe_video  # noqa: E402
from vidqa.video.sampling import SamplingSpec  # noqa: E402

SAMPLERS = {
    "uniform(3)": SamplingSpec(method="uniform", n=3),
    "uniform(16)": SamplingSpec(method="uniform", n=16),
    "keyframes": SamplingSpec(method="keyframes"),
    "fractions(.1,.5,.9)": SamplingSpec(method="fractions", fractions=(0.1, 0.5, 0.9)),
    "every_n_seconds(1)": SamplingSpec(method="every_n_seconds", seconds=1.0),
}


def make_long_video(directory: Path) -> Path:
    path = directory / "bench_720p_24s.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=24",
         "-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-bf", "2", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )
    return path


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def bench_video(path: Path, repeat: int) -> list[tuple[str, str, int, float, float, float]]:
    probe = probe_video(str(path))
    full_s, full = best_of(lambda: decode_frames(str(path), probe, range(probe.frame_count)), repeat)
    rows = [(path.name, "all frames (baseline)", len(full), full_s, len(full) / full_s, 1.0)]
    for name, spec in SAMPLERS.items():
        secs, frames = best_of(lambda: spec.sample(str(path), probe), repeat)
        rows.append((path.name, name, len(frames), secs, len(frames) / secs, full_s / secs))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "videos")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        videos = [make_long_video(Path(tmp))]
        videos += [p for p in sorted(args.shared.glob("*")) if p.suffix in {".mp4", ".mkv", ".mov"}]
        rows = [r for v in videos for r in bench_video(v, args.repeat)]
    lines = [
        "| video | sampler | frames | seconds | frames/s | speed-up vs all frames |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {v} | {s} | {n} | {t:.3f} | {fps:.1f} | {r:.1f}x |" for v, s, n, t, fps, r in rows]
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
