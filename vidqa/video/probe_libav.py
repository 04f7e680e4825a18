"""Probe a video in the process, through the FFmpeg libraries: ffprobe's answer without its
process.

An ffprobe process costs 55-83 ms per video (bench/results/decoders_cpu.md; most of it is
the process loading the FFmpeg libraries and everything they link), which on a 2-15 s clip is
more than decoding its frames in the process.
Here the same facts come from two well-kept bindings of the FFmpeg libraries:

- PyAV demuxes the container: the format, every stream's codec, size, time base, frame rates,
  sample aspect ratio, disposition and tags, and every packet of the chosen video stream
  (timestamps, durations, key flags; nothing is decoded).
- torchcodec, the in-process decoder, reads the header on the system FFmpeg libraries (the
  ones the ffprobe binary and the decoder use): the display rotation (PyAV exposes no stream
  display matrix), the container's duration and bit rate.

The result has ffprobe's JSON shape (``format``, ``streams``, ``packets``; the fields vidqa
reads plus the usual descriptive ones), so :func:`vidqa.video.probe.probe_video` reads either
the same way. tests/test_probe_libav.py checks that both give the same probe on every shared
sample and on synthetic edge cases (VFR, non-square pixels, rotation, audio first, Matroska
without stream durations, MPEG-TS, WebM).
"""

from __future__ import annotations

import threading
from fractions import Fraction
from functools import lru_cache
from typing import Any, Optional


class LibavUnavailable(Exception):
    """This file (or this install) is probed by the ffprobe binary instead; the message says why."""


@lru_cache(maxsize=1)
def available() -> Optional[str]:
    """None when PyAV and torchcodec load here, else why not."""
    try:
        import av  # noqa: F401
        from torchcodec.decoders import get_container_metadata  # noqa: F401
    except Exception as exc:  # ImportError, or OSError/RuntimeError from their libraries
        return f"in-process probing cannot load: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return None


def _ratio(value: Optional[Fraction], separator: str = "/") -> Optional[str]:
    if value is None or value.numerator == 0:
        return None
    return f"{value.numerator}{separator}{value.denominator}"


def _seconds(ticks: Optional[int], time_base: Fraction) -> Optional[str]:
    """As ffprobe prints a time: ``ticks * av_q2d(time_base)`` in double, six decimals."""
    if ticks is None:
        return None
    return f"{ticks * (time_base.numerator / time_base.denominator):f}"


def _drop_none(entries: dict[str, Any]) -> dict[str, Any]:
    # ffprobe's JSON leaves out what is unknown (its N/A) rather than printing null.
    return {k: v for k, v in entries.items() if v is not None}


def _stream_entry(stream: Any, rotation: Optional[float]) -> dict[str, Any]:
    import av

    context = stream.codec_context
    codec = context.codec.canonical_name if context is not None and context.codec is not None else None
    time_base = stream.time_base or Fraction(1, 1000)
    entry: dict[str, Any] = {
        "index": stream.index,
        "codec_name": codec,
        "codec_type": stream.type,
        "profile": stream.profile if stream.type in ("video", "audio") else None,
        "time_base": f"{time_base.numerator}/{time_base.denominator}",
        "start_pts": stream.start_time,
        "start_time": _seconds(stream.start_time, time_base),
        "duration_ts": stream.duration,
        "duration": _seconds(stream.duration, time_base),
        "nb_frames": str(stream.frames) if stream.frames else None,
        "disposition": {
            "default": int(bool(stream.disposition & av.stream.Disposition.default)),
            "attached_pic": int(bool(stream.disposition & av.stream.Disposition.attached_pic)),
        },
        "tags": dict(stream.metadata) or None,
    }
    if stream.type == "video":
        # ffprobe prints av_guess_sample_aspect_ratio(): the stream's when valid, else the codec's.
        sar = stream.sample_aspect_ratio or (context.sample_aspect_ratio if context is not None else None)
        entry.update({
            "width": context.width if context is not None else None,
            "height": context.height if context is not None else None,
            "pix_fmt": context.pix_fmt if context is not None else None,
            "sample_aspect_ratio": _ratio(sar, ":"),
            "r_frame_rate": _ratio(stream.base_rate) or "0/0",
            "avg_frame_rate": _ratio(stream.average_rate) or "0/0",
            "bit_rate": str(context.bit_rate) if context is not None and context.bit_rate else None,
        })
        if rotation is not None:
            entry["side_data_list"] = [{"side_data_type": "Display Matrix", "rotation": rotation}]
    elif stream.type == "audio" and context is not None:
        entry.update({"sample_rate": str(context.sample_rate), "channels": context.channels})
    return _drop_none(entry)


def _chosen_video(streams: list[dict]) -> Optional[dict]:
    return next((s for s in streams if s.get("codec_type") == "video"
                 and not (s.get("disposition") or {}).get("attached_pic")), None)


def _probe_info(path: str) -> dict:
    import av
    from torchcodec.decoders import get_container_metadata

    header = get_container_metadata(path)
    with av.open(path) as container:
        streams = []
        for stream in container.streams:
            described = header.streams[stream.index] if stream.index < len(header.streams) else None
            rotation = getattr(described, "rotation", None)
            # ffprobe prints the display matrix's angle as an integer-valued double (-90, 180).
            streams.append(_stream_entry(stream, int(rotation) if rotation else None))
        fmt = _drop_none({
            "filename": path,
            "nb_streams": len(streams),
            "format_name": container.format.name,
            "start_time": _seconds(container.start_time, Fraction(1, 1_000_000)),
            # The system FFmpeg's reading (the ffprobe binary's), not PyAV's bundled libraries',
            # which can differ by a millisecond on MP4.
            "duration": f"{header.duration_seconds_from_header:f}" if header.duration_seconds_from_header else None,
            "bit_rate": str(header.bit_rate_from_header) if header.bit_rate_from_header else None,
            "tags": dict(container.metadata) or None,
        })
        packets: list[dict] = []
        video = _chosen_video(streams)
        if video is not None:
            for packet in container.demux(container.streams[video["index"]]):
                if packet.size == 0 and packet.pts is None and packet.dts is None:
                    continue  # PyAV's end-of-stream flush packet, not the container's
                packets.append(_drop_none({
                    "stream_index": packet.stream_index, "pts": packet.pts, "dts": packet.dts,
                    "duration": packet.duration, "flags": "K" if packet.is_keyframe else "_",
                }))
    return {"format": fmt, "streams": streams, "packets": packets,
            "prober": f"libav (PyAV {av.__version__})"}


def probe_info_in_process(path: str, timeout_s: float) -> dict:
    """ffprobe's ``-show_format -show_streams -show_entries packet=...`` JSON for ``path``,
    read in this process, or :class:`LibavUnavailable`. A read that outlasts ``timeout_s``
    (a stalled mount) is left to its daemon thread and reported as :class:`TimeoutError`:
    a library call cannot be killed the way an ffprobe process is."""
    reason = available()
    if reason:
        raise LibavUnavailable(reason)
    outcome: dict[str, Any] = {}

    def read() -> None:
        try:
            outcome["info"] = _probe_info(path)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    reader = threading.Thread(target=read, name="vidqa-probe", daemon=True)
    reader.start()
    reader.join(timeout_s)
    if reader.is_alive():
        raise TimeoutError(path)
    if "error" in outcome:
        exc = outcome["error"]
        raise LibavUnavailable(f"{type(exc).__name__}: {exc}") from exc
    return outcome["info"]
