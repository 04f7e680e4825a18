"""Distinct small videos made with ffmpeg's lavfi sources: a URI and its bytes both differ,
so each is its own video (the same bytes under two names are one video with two locations)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def distinct_video(path: Path, index: int, seconds: float = 3.0, size: str = "480x270", rate: int = 25) -> Path:
    """A ``testsrc2`` clip whose hue depends on ``index`` (so no two indices share bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
         "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}",
         "-vf", f"hue=h={(index * 37) % 360}:s={1 + (index % 5) * 0.1:.1f}", "-pix_fmt", "yuv420p",
         "-c:v", "libx264", "-preset", "ultrafast", "-metadata", f"comment=vidqa-test-{index}", str(path)],
        check=True,
    )
    return path


def distinct_videos(folder: Path, n: int, prefix: str = "v", **kwargs) -> list[Path]:
    return [distinct_video(folder / f"{prefix}{i:02d}.mp4", i, **kwargs) for i in range(n)]
