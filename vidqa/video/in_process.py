"""In-process decoding with torchcodec (the PyTorch project's decoder over the FFmpeg
libraries): no ffmpeg process and no raw-RGB pipe per video.

torchcodec seeks exactly with the probe's own frame table (presentation order, key frames,
the probe's video stream; no second scan of the file) and applies the display matrix's
rotation; its YUV -> RGB conversion is FFmpeg's own, so frames are byte-identical to the
ffmpeg binary's full decode (checked on every shared sample video,
tests/test_decode_backends.py). What it does not do the way the ffmpeg path does -- resample
non-square pixels, shrink frames (its Resize is bilinear, the ffmpeg path uses the area
filter), report a corrupt frame and go on -- is answered with :class:`Unsupported`, and
``decode_frames`` decodes that video with the ffmpeg binary instead.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

from vidqa.video.probe import VideoProbe


class Unsupported(Exception):
    """This decode needs the ffmpeg binary's path; the message says why."""


@lru_cache(maxsize=1)
def available() -> str | None:
    """None when torchcodec decodes here, else why not (not installed, no FFmpeg libraries,
    a torch it was not built for)."""
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except Exception as exc:  # ImportError, OSError or RuntimeError from loading its libraries
        return f"torchcodec cannot load: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return None


def decode_in_process(path: str, probe: VideoProbe, wanted: Sequence[int]) -> np.ndarray:
    """The frames at ``wanted`` (sorted, distinct, in range) as displayed, ``(N, H, W, 3)``
    uint8, or :class:`Unsupported`."""
    stored = (probe.width, probe.height) if probe.rotation % 180 == 0 else (probe.height, probe.width)
    if (probe.display_width, probe.display_height) != stored:
        raise Unsupported(f"non-square pixels (sample aspect ratio {probe.sample_aspect_ratio})")
    from torchcodec.decoders import VideoDecoder

    # Each call opens its own decoder: FFmpeg's decoders are not shared across threads.
    try:
        decoder = VideoDecoder(path, stream_index=probe.stream_index, dimension_order="NHWC",
                               num_ffmpeg_threads=1, custom_frame_mappings=probe.frame_table_json)
    except Exception as exc:
        raise Unsupported(f"torchcodec cannot open it: {exc}") from exc
    try:
        batch = decoder.get_frames_at(list(wanted))
    except Exception as exc:  # corrupt data: the ffmpeg path skips the frame and reports it
        raise Unsupported(f"decode error: {str(exc).splitlines()[0]}") from exc
    array = batch.data.numpy()
    if array.shape[1:3] != (probe.display_height, probe.display_width):
        raise Unsupported(f"torchcodec gives {array.shape[2]}x{array.shape[1]} frames, "
                          f"displayed size is {probe.display_width}x{probe.display_height}")
    # The same frames as the probe's: their presentation times agree to a tick.
    expected = probe.frame_times[np.asarray(wanted)]
    if not np.allclose(batch.pts_seconds.numpy().astype(np.float64), expected, atol=0.5 * float(probe.time_base) + 1e-6):
        raise Unsupported("torchcodec's frame times differ from the probe's")
    return np.ascontiguousarray(array)
