"""Decode chosen frames of a video as displayed, with exact timestamps: in the process with
torchcodec where it can (``vidqa.video.in_process``), else with the ffmpeg binary.

Frames are identified by their presentation timestamp (PTS) from the probe, so variable
frame rate is exact. One ffmpeg process decodes every requested frame of a video in a
single pass; rotation is applied by ffmpeg's autorotate and non-square pixels are
resampled to square ones, so the RGB arrays are what a viewer sees.
"""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import ffmpeg
import numpy as np

from vidqa.config import get_settings
from vidqa.errors import VideoError
from vidqa.video.in_process import Unsupported, decode_in_process
from vidqa.video.in_process import available as in_process_available
from vidqa.video.probe import VideoProbe

# ffmpeg's expression parser recurses once per term and gives up on long sums; above
# this many wanted frames, select the PTS span and keep the wanted frames in Python.
_MAX_SELECT_TERMS = 48
_SHOWINFO = re.compile(r"\bn:\s*(\d+)\s+pts:\s*(-?\d+)\s+pts_time:\s*(\S+)")
_ERROR_LINE = re.compile(r"^(\[[^\]]+\] .*(error|invalid|corrupt|missing)|Error .*)", re.IGNORECASE)


@dataclass
class Frames:
    """RGB uint8 frames ``(N, H, W, 3)`` with their frame indices and timestamps (seconds)."""

    array: np.ndarray
    indices: np.ndarray
    timestamps: np.ndarray
    requested: int
    # Frames that were asked for but could not be decoded (corrupt data).
    missing_indices: list[int] = field(default_factory=list)
    decode_errors: list[str] = field(default_factory=list)
    # Frames the sampling chose but its max_frames cap left out (0: none).
    capped: int = 0
    # What scorers computed from these frames, for other scorers of the same clip to reuse
    # (CLIP embeddings by model): the frames are decoded once per clip and shared.
    derived: dict = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.indices.size)

    def at(self, positions: np.ndarray) -> np.ndarray:
        """The frames at frame indices ``positions`` (repeats allowed), ``(len(positions), H, W, 3)``;
        a position whose frame could not be decoded takes the nearest decoded frame."""
        if not len(self):
            raise VideoError("no frame could be decoded")
        pos = np.asarray(positions, dtype=np.int64)
        right = np.clip(np.searchsorted(self.indices, pos), 0, len(self) - 1)
        left = np.clip(right - 1, 0, len(self) - 1)
        nearer_left = np.abs(self.indices[left] - pos) < np.abs(self.indices[right] - pos)
        return self.array[np.where(nearer_left, left, right)]

    def summary(self) -> dict:
        return {
            "frames": len(self),
            "requested": self.requested,
            "frame_indices": self.indices.tolist(),
            "skipped_corrupt": self.missing_indices,
            "capped": self.capped,
        }


def output_size(probe: VideoProbe, max_size: Optional[int] = None) -> tuple[int, int]:
    """Displayed size, downscaled so the longer side is at most ``max_size`` (even-free)."""
    w, h = probe.display_width, probe.display_height
    if max_size and max(w, h) > max_size:
        scale = max_size / max(w, h)
        w, h = max(1, round(w * scale)), max(1, round(h * scale))
    return int(w), int(h)


def _selection(probe: VideoProbe, group: Sequence[int], keyframes_only: bool) -> tuple[str, int]:
    """The ``select`` filter expression for frames ``group`` and how many frames it lets out.

    Short lists select each PTS; long ones select the PTS span (everything in it comes
    out, and the caller keeps the wanted frames). The count lets ffmpeg stop decoding
    as soon as the last selected frame is out.
    """
    pts = [int(probe.frame_pts[i]) for i in group]
    if len(pts) <= _MAX_SELECT_TERMS:
        return "+".join(f"eq(pts,{p})" for p in pts), len(pts)
    first, last = group[0], group[-1]
    if keyframes_only:
        keys = probe.keyframe_indices
        count = int(((keys >= first) & (keys <= last)).sum())
    else:
        count = last - first + 1
    return f"between(pts,{pts[0]},{pts[-1]})", count


# One extra ffmpeg process costs about as much as decoding this many frames; the plan
# below weighs it against decoding frames nobody asked for.
_PROCESS_COST_FRAMES = 24
_MAX_PARALLEL_SEEKS = 4


def _run_ffmpeg(
    path: str,
    select: str,
    frames_out: int,
    width: int,
    height: int,
    downscale: bool,
    seek_s: Optional[float] = None,
    keyframes_only: bool = False,
) -> tuple[np.ndarray, list[int], list[str]]:
    """One ffmpeg process: decode, keep the selected frames, return them as RGB with their PTS."""
    settings = get_settings()
    input_opts: dict = {"copyts": None}
    if seek_s is not None and seek_s > 0:
        # Jump to the key frame at or before the first wanted frame; the PTS select
        # below keeps exactly the wanted frames, so seek precision does not matter.
        input_opts.update(ss=f"{seek_s:.6f}", noaccurate_seek=None)
    if keyframes_only:
        input_opts["skip_frame"] = "nokey"
    stream = (
        ffmpeg.input(path, **input_opts)["v:0"]
        .filter("select", select)
        .filter("scale", width, height, flags="area" if downscale else "bicubic")
        .filter("setsar", 1)
        .filter("showinfo")
    )
    out_opts = {"format": "rawvideo", "pix_fmt": "rgb24", "fps_mode": "passthrough", "frames:v": frames_out}
    args = stream.output("pipe:", **out_opts).compile(cmd=settings.ffmpeg_binary)
    args[1:1] = ["-nostdin", "-hide_banner", "-nostats", "-loglevel", "info"]
    try:
        proc = subprocess.run(args, capture_output=True, timeout=settings.decode_timeout_s)
    except subprocess.TimeoutExpired:
        raise VideoError(f"decoding took longer than {settings.decode_timeout_s:.0f} s", stage="decode")
    except FileNotFoundError as exc:
        raise RuntimeError(f"ffmpeg binary {settings.ffmpeg_binary!r} not found; install ffmpeg") from exc
    log = proc.stderr.decode("utf-8", "replace")
    shown = [int(m.group(2)) for m in _SHOWINFO.finditer(log)]
    errors = [line.strip() for line in log.splitlines() if _ERROR_LINE.match(line) and "showinfo" not in line]
    frame_bytes = width * height * 3
    # showinfo reports each frame as it passes; the raw pipe carries the same frames in
    # the same order, so the two lists line up.
    n = min(len(proc.stdout) // frame_bytes, len(shown))
    if n == 0 and proc.returncode != 0 and not errors:
        errors = [f"ffmpeg exited with status {proc.returncode}"]
    array = np.frombuffer(proc.stdout, dtype=np.uint8, count=n * frame_bytes).reshape(n, height, width, 3)
    return array, shown[:n], errors


def plan_decode(probe: VideoProbe, wanted: Sequence[int]) -> list[list[int]]:
    """Split wanted frame indices into groups, one ffmpeg process each.

    Either one pass from the key frame before the first wanted frame to the last, or one
    seek per key-frame interval (GOP) holding wanted frames, whichever decodes fewer
    frames once process start-up is counted. Sparse samples of long videos seek; dense
    ones stream.
    """
    wanted = sorted(wanted)
    single_cost = wanted[-1] - probe.keyframe_at_or_before(wanted[0]) + 1 + _PROCESS_COST_FRAMES
    groups: dict[int, list[int]] = {}
    for i in wanted:
        groups.setdefault(probe.keyframe_at_or_before(i), []).append(i)
    seek_cost = sum(g[-1] - k + 1 + _PROCESS_COST_FRAMES for k, g in groups.items())
    return list(groups.values()) if seek_cost < single_cost else [wanted]


def decode_memory_bytes(n_frames: int, width: int, height: int) -> int:
    """Peak bytes of one decode: ffmpeg's raw output as the pipe's chunks and joined, then
    the stacked frames (measured: 2.7 x the frames' bytes; see tests/test_faults.py)."""
    return 3 * n_frames * width * height * 3


def _check_memory(n_frames: int, width: int, height: int) -> None:
    limit_mb = get_settings().max_decode_mb
    need = decode_memory_bytes(n_frames, width, height)
    if need > limit_mb * 2**20:
        raise VideoError(f"decoding {n_frames} frames of {width}x{height} needs {need / 2**20:.0f} MiB, over the "
                         f"{limit_mb:.0f} MiB limit (VIDQA_MAX_DECODE_MB): sample fewer frames or shrink them "
                         "(--max-size)", stage="decode")


def _in_process_allowed() -> bool:
    choice = get_settings().decoder
    if choice == "ffmpeg":
        return False
    reason = in_process_available()
    if reason and choice == "torchcodec":
        raise RuntimeError(f"VIDQA_DECODER=torchcodec, but {reason}; install torchcodec or set VIDQA_DECODER=auto")
    return reason is None


def decode_frames(
    path: str,
    probe: VideoProbe,
    indices: Sequence[int],
    max_size: Optional[int] = None,
    keyframes_only: bool = False,
    size: Optional[tuple[int, int]] = None,
) -> Frames:
    """Decode the frames at ``indices`` (positions in ``probe.frame_pts``).

    ``size`` (width, height) resizes every frame to exactly that size (area filter when
    shrinking, bicubic when enlarging), as set-level metrics need; otherwise frames keep
    their displayed size, shrunk to ``max_size`` on the longer side when given.

    A frame that cannot be decoded is skipped and listed in ``missing_indices``; the
    call fails only when none of the requested frames decodes. ``keyframes_only`` makes
    the decoder skip every non-key frame (for key-frame sampling).
    """
    wanted = sorted({int(i) for i in indices if 0 <= int(i) < probe.frame_count})
    if not wanted:
        raise VideoError("no frames requested within the video", stage="decode")
    if size is not None:
        width, height = int(size[0]), int(size[1])
        downscale = width * height < probe.display_width * probe.display_height
    else:
        width, height = output_size(probe, max_size)
        downscale = bool(max_size)
    _check_memory(len(wanted), width, height)
    times = probe.frame_times
    if size is None and not downscale and _in_process_allowed():
        try:
            array = decode_in_process(path, probe, wanted)
        except Unsupported:
            pass  # the ffmpeg binary decodes it, and reports what it could not
        else:
            idx = np.asarray(wanted, dtype=np.int64)
            return Frames(array=array, indices=idx, timestamps=times[idx], requested=len(wanted))
    index_of_pts = {int(probe.frame_pts[i]): i for i in wanted}
    got: dict[int, np.ndarray] = {}
    errors: list[str] = []

    def run(group: list[int], seek: bool) -> None:
        """Decode one group in its own ffmpeg process and keep the wanted frames."""
        select, frames_out = _selection(probe, group, keyframes_only)
        seek_s = float(times[probe.keyframe_at_or_before(group[0])] - times[0]) if seek else None
        array, shown, errs = _run_ffmpeg(
            path, select, frames_out, width, height, downscale, seek_s, keyframes_only
        )
        errors.extend(errs)
        for k, pts in enumerate(shown):
            if pts in index_of_pts:
                got.setdefault(index_of_pts[pts], array[k])

    groups = [wanted] if keyframes_only else plan_decode(probe, wanted)
    seek = len(groups) > 1 or (not keyframes_only and probe.keyframe_at_or_before(wanted[0]) > 0)
    with ThreadPoolExecutor(max_workers=min(_MAX_PARALLEL_SEEKS, len(groups))) as pool:
        list(pool.map(lambda g: run(g, seek), groups))
    missing = [i for i in wanted if i not in got]
    if missing and seek:
        # A seek that landed wrong must not cost frames: fetch the rest in one plain pass.
        run(missing, seek=False)
        missing = [i for i in wanted if i not in got]
    if not got:
        detail = errors[-1] if errors else "no frame came out"
        raise VideoError(f"no decodable frames: {detail}", stage="decode")
    order = sorted(got)
    idx = np.asarray(order, dtype=np.int64)
    return Frames(
        array=np.stack([got[i] for i in order]),
        indices=idx,
        timestamps=times[idx],
        requested=len(wanted),
        missing_indices=missing,
        decode_errors=list(dict.fromkeys(errors))[:20],
    )


def iter_frames(path: str, probe: VideoProbe, max_size: Optional[int] = None,
                size: Optional[tuple[int, int]] = None) -> Iterator[np.ndarray]:
    """Every frame, as displayed, one RGB array at a time (for whole-video analyses such as
    scene and shot detection, where holding all frames would not fit in memory). ``max_size``
    shrinks the longer side (area filter); ``size`` (width, height) scales to exactly that
    size with FFmpeg's default bicubic scaler, as ``ffmpeg -s WxH`` does (a detector's fixed
    input, resized in the decoder: no full-size frame is copied out)."""
    settings = get_settings()
    if size is not None:
        width, height = int(size[0]), int(size[1])
        flags = "bicubic"
    else:
        width, height = output_size(probe, max_size)
        flags = "area" if max_size else "bicubic"
    stream = (
        ffmpeg.input(path)["v:0"]
        .filter("scale", width, height, flags=flags)
        .filter("setsar", 1)
    )
    args = stream.output("pipe:", format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough").compile(
        cmd=settings.ffmpeg_binary
    )
    args[1:1] = ["-nostdin", "-hide_banner", "-nostats", "-loglevel", "error"]
    frame_bytes = width * height * 3
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        while True:
            buf = proc.stdout.read(frame_bytes)
            if len(buf) < frame_bytes:
                break
            yield np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 3)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
