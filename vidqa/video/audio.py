"""Decode an audio track (a video's own, or a separate file) to mono float32 PCM with ffmpeg."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Optional

import numpy as np

from vidqa.config import get_settings
from vidqa.errors import VideoError


@dataclass(frozen=True)
class AudioRequest:
    """What a scorer needs to hear for one clip: the audio of ``source`` (None: the video's own
    track; else a separate file's URI) at ``sample_rate`` Hz, at most ``max_s`` seconds."""

    sample_rate: int
    max_s: float
    source: Optional[str] = None


@dataclass
class AudioClip:
    """Mono float32 samples in [-1, 1] at ``sample_rate``, starting ``offset_s`` into the track."""

    samples: np.ndarray
    sample_rate: int
    offset_s: float
    source: str

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.sample_rate


def decode_audio(
    path: str, sample_rate: int, offset_s: float = 0.0, duration_s: Optional[float] = None, source: str = ""
) -> AudioClip:
    """The first audio stream of ``path`` from ``offset_s`` (seconds from the file's start) for
    ``duration_s`` seconds, downmixed to mono and resampled to ``sample_rate``.

    Raises VideoError(stage="audio") when the file has no audio stream, the span holds no
    samples, or ffmpeg cannot decode it.
    """
    settings = get_settings()
    args = [settings.ffmpeg_binary, "-nostdin", "-hide_banner", "-v", "error"]
    if offset_s > 0:
        args += ["-ss", f"{offset_s:.6f}"]
    args += ["-i", path]
    if duration_s is not None:
        args += ["-t", f"{duration_s:.6f}"]
    args += ["-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "pipe:1"]
    name = source or path
    try:
        proc = subprocess.run(args, capture_output=True, timeout=settings.decode_timeout_s)
    except subprocess.TimeoutExpired:
        raise VideoError(f"decoding audio took longer than {settings.decode_timeout_s:.0f} s", stage="audio")
    err = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        if "matches no streams" in err:
            raise VideoError(f"no audio track in {name}", stage="audio")
        last = err.splitlines()[-1] if err else f"ffmpeg exit {proc.returncode}"
        raise VideoError(f"cannot decode audio of {name}: {last}", stage="audio")
    samples = np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)
    if samples.size == 0:
        raise VideoError(f"the audio track of {name} holds no samples in this span", stage="audio")
    return AudioClip(samples, sample_rate, offset_s, name)
