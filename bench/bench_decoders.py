"""Per-clip sampling latency of the two decoders, in one process: torchcodec in the process
(VIDQA_DECODER=torchcodec) against the ffmpeg binary through a pipe (VIDQA_DECODER=ffmpeg).

Clips: 10 s 360p, 10 s 720p and 60 s 1080p H.264 (2 s GOP, B-frames, made with ffmpeg's
testsrc2), plus the shared sample clip Bfyp0C02sko (640x360, 10 s). Each row is the best of
``--repeat`` runs of sampling one clip from one probe; the probe is timed apart, both ways:
the ffprobe binary (the old engine's) and libav in the process (the new engine's; both probes
are checked equal). The last column is the whole per-clip cost, probe plus sampling, old
engine over new. clips/s is 1 / sampling latency (torchcodec and PyAV decode on one
thread, the ffmpeg binary on its default threads). The frames of the two decoders are
compared byte for byte on every row; PyAV (its wheel bundles its own FFmpeg) is timed on
the same frames and its largest difference from the binary's frames is shown.

    python bench/bench_decoders.py [--repeat 3] [--out bench/results/decoders_cpu.md]
"""

from __future__ import annotations

import argparse
import os
import resource
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


def cpu_of(fn, repeat: int) -> float:
    """The least CPU time (this process and the processes it waited for) of ``repeat`` calls:
    per-core cost, whatever number of threads each engine decodes on."""
    def used() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    best = float("inf")
    for _ in range(repeat):
        start = used()
        fn()
        best = min(best, used() - start)
    return best


def old_engine(clip: Path, spec) -> None:
    use_prober("ffprobe")
    use("ffmpeg")
    spec.sample(str(clip), probe_video(str(clip)))


def new_engine(clip: Path, spec) -> None:
    use_prober("libav")
    use("torchcodec")
    spec.sample(str(clip), probe_video(str(clip)))


def use_prober(prober: str) -> None:
    os.environ["VIDQA_PROBER"] = prober
    get_settings.cache_clear()


def same_probe(a, b) -> bool:
    ca, cb = a.columns(), b.columns()
    return all(ca[k] == cb[k] for k in ca if k != "probe") and np.array_equal(a.frame_pts, b.frame_pts) \
        and np.array_equal(a.keyframe_indices, b.keyframe_indices)


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
            use_prober("ffprobe")
            probe_s, probe = best_of(lambda: probe_video(str(clip)), args.repeat)
            use_prober("libav")
            libav_s, libav_probe = best_of(lambda: probe_video(str(clip)), args.repeat)
            if not same_probe(probe, libav_probe):
                raise SystemExit(f"{clip}: the probes differ")
            for name, spec in SAMPLERS.items():
                use("ffmpeg")
                binary_s, binary = best_of(lambda: spec.sample(str(clip), probe), args.repeat)
                use("torchcodec")
                inproc_s, inproc = best_of(lambda: spec.sample(str(clip), probe), args.repeat)
                same = np.array_equal(binary.array, inproc.array) and np.array_equal(binary.indices, inproc.indices)
                pyav_s, pyav = best_of(lambda: pyav_sample(str(clip), probe, inproc.indices), args.repeat)
                pyav_diff = int(np.abs(pyav.astype(int) - binary.array).max()) if pyav.shape == binary.array.shape else -1
                old_cpu = cpu_of(lambda: old_engine(clip, spec), args.repeat)
                new_cpu = cpu_of(lambda: new_engine(clip, spec), args.repeat)
                rows.append((clip.stem[:24], name, len(inproc), binary_s, inproc_s, same, pyav_s, pyav_diff, probe_s,
                             libav_s, old_cpu, new_cpu))
    lines = [
        "| clip | sampler | frames | ffmpeg binary ms | torchcodec ms | speed-up | clips/s (binary / torchcodec) "
        "| frames equal | PyAV ms | PyAV max diff (levels) | probe ms (ffprobe / libav) "
        "| per clip ms, probe + sampling (old / new) | speed-up per clip | CPU ms per clip (old / new) "
        "| clips/s per core, new / old |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {c} | {s} | {n} | {b * 1e3:.0f} | {i * 1e3:.0f} | {b / i:.1f}x | {1 / b:.1f} / {1 / i:.1f} | "
              f"{'yes' if same else 'NO'} | {pa * 1e3:.0f} | {pd} | {pr * 1e3:.0f} / {lp * 1e3:.1f} | "
              f"{(pr + b) * 1e3:.0f} / {(lp + i) * 1e3:.0f} | {(pr + b) / (lp + i):.1f}x | "
              f"{oc * 1e3:.0f} / {nc * 1e3:.0f} | {oc / nc:.1f}x |"
              for c, s, n, b, i, same, pa, pd, pr, lp, oc, nc in rows]  # fmt: skip
    table = "\n".join(lines)
    print(table)
    if args.out:
        header = (f"Decoders, {os.cpu_count()} CPU cores, best of {args.repeat} (python bench/bench_decoders.py)."
                  " Old engine: the ffprobe binary, then the ffmpeg binary through a pipe; new engine: libav's"
                  " probe in the process, then torchcodec.\n\n")  # fmt: skip
        args.out.write_text(header + table + "\n")


if __name__ == "__main__":
    main()
