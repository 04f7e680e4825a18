"""Per-clip sampling latency of the two decoders, in one process: torchcodec in the process
(VIDQA_DECODER=torchcodec) against the ffmpeg binary through a pipe (VIDQA_DECODER=ffmpeg).

Clips: 10 s 360p, 10 s 720p and 60 s 1080p H.264 (2 s GOP, B-frames, made with ffmpeg's
testsrc2), plus the shared sample clip Bfyp0C02sko (640x360, 10 s). Each row is the best of
``--repeat`` runs of sampling one clip (the probe is taken once, before, for both; it is
the same ffprobe call either way); clips/s is 1 / latency (torchcodec and PyAV decode on one
thread, the ffmpeg binary on its default threads). The frames of the two decoders are
compared byte for byte on every row; PyAV (its wheel bundles its own FFmpeg) is timed on
the same frames and its largest difference from the binary's frames is shown.

    python bench/bench_decoders.py [--repeat 3] [--out bench/results/decoders_cpu.md]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_sampling import best_of  # noqa: E402
from vidqa.config import get_settings  # noqa: E402
from vidqa.video.in_process import available  # noqa: E402
from vidqa.video.probe import probe_video  # noqa: E402
from vidqa.video.sampling import SamplingSpec  # noqa: E402

SAMPLERS = {
    "uniform(3)": SamplingSpec(method="uniform", n=3),
    "uniform(16)": SamplingSpec(method="uniform", n=16),
    "keyframes": SamplingSpec(method="keyframes"),
}
CLIPS = {"10s_360p": ("640x360", 10), "10s_720p": ("1280x720", 10), "60s_1080p": ("1920x1080", 60)}


def make_clip(directory: Path, name: str, size: str, seconds: int) -> Path:
    path = directory / f"{name}.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}",
         "-c:v", "libx264", "-preset", "veryfast", "-g", "50", "-bf", "2", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


def pyav_sample(path: str, probe, indices) -> np.ndarray:
    """The same frames with PyAV, for comparison: seek to the key frame before each wanted
    frame, decode forward to its PTS (PyAV has no index-exact seek of its own)."""
    import av

    out = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        for i in indices:
            pts = int(probe.frame_pts[i])
            container.seek(pts, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is not None and frame.pts >= pts:
                    out.append(frame.to_ndarray(format="rgb24"))
                    break
    return np.stack(out)


def use(decoder: str) -> None:
    os.environ["VIDQA_DECODER"] = decoder
    get_settings.cache_clear()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if available() is not None:
        raise SystemExit(available())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clips = [make_clip(Path(tmp), name, size, secs) for name, (size, secs) in CLIPS.items()]
        clips.append(ROOT.parent / "shared" / "videos" / "Bfyp0C02sko_000248_000258.mp4")
        use("torchcodec")
        SAMPLERS["uniform(3)"].sample(str(clips[0]), probe_video(str(clips[0])))  # load the libraries once
        for clip in clips:
            probe_s, probe = best_of(lambda: probe_video(str(clip)), args.repeat)
            for name, spec in SAMPLERS.items():
                use("ffmpeg")
                binary_s, binary = best_of(lambda: spec.sample(str(clip), probe), args.repeat)
                use("torchcodec")
                inproc_s, inproc = best_of(lambda: spec.sample(str(clip), probe), args.repeat)
                same = np.array_equal(binary.array, inproc.array) and np.array_equal(binary.indices, inproc.indices)
                pyav_s, pyav = best_of(lambda: pyav_sample(str(clip), probe, inproc.indices), args.repeat)
                pyav_diff = int(np.abs(pyav.astype(int) - binary.array).max()) if pyav.shape == binary.array.shape else -1
                rows.append((clip.stem[:24], name, len(inproc), binary_s, inproc_s, same, pyav_s, pyav_diff, probe_s))
    lines = [
        "| clip | sampler | frames | ffmpeg binary ms | torchcodec ms | speed-up | clips/s (binary / torchcodec) "
        "| frames equal | PyAV ms | PyAV max diff (levels) | probe ms | speed-up with the probe |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {c} | {s} | {n} | {b * 1e3:.0f} | {i * 1e3:.0f} | {b / i:.1f}x | {1 / b:.1f} / {1 / i:.1f} | "
              f"{'yes' if same else 'NO'} | {pa * 1e3:.0f} | {pd} | {pr * 1e3:.0f} | {(pr + b) / (pr + i):.1f}x |"
              for c, s, n, b, i, same, pa, pd, pr in rows]  # fmt: skip
    table = "\n".join(lines)
    print(table)
    if args.out:
        header = (f"Decoders, {os.cpu_count()} CPU cores, best of {args.repeat} (python bench/bench_decoders.py)."
                  " The probe (one ffprobe call, the same for both) is timed apart and added in the last column.\n\n")  # fmt: skip
        args.out.write_text(header + table + "\n")


if __name__ == "__main__":
    main()
