"""Find videos in a source and identify their content."""

from __future__ import annotations

import glob as globlib
import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mkv .mov .avi .webm .mpg .mpeg .ts .mts .m2ts .flv .wmv .3gp .ogv .gif".split()
)


@dataclass
class VideoRef:
    """A video as listed by a source, before it is read."""

    uri: str
    size: Optional[int] = None
    mtime: Optional[float] = None
    etag: Optional[str] = None
    fields: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VideoRef":
        return cls(**data)


def _is_video_name(path: str) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _local_ref(path: str) -> VideoRef:
    p = Path(path).absolute()
    try:
        st = p.stat()
        return VideoRef(uri=str(p), size=st.st_size, mtime=st.st_mtime)
    except OSError:
        # Listed but not stat-able (dangling link, vanished): reading it records the reason.
        return VideoRef(uri=str(p))


def list_videos(source: str) -> list[VideoRef]:
    """Videos under ``source``: a folder (recursive), a glob, or one file. Sorted by URI.

    In folders and globs only files with a video extension are taken; a single file is
    taken whatever its name, so a user who names a file gets a verdict on it.
    """
    if "://" in source and not source.startswith("file://"):
        raise ValueError(f"unsupported source {source!r}: give a local folder, glob or file")
    source = source.removeprefix("file://")
    path = Path(source).expanduser()
    if path.is_dir():
        found = [
            os.path.join(root, name)
            for root, _dirs, names in os.walk(path, followlinks=True)
            for name in names
            if _is_video_name(name)
        ]
    elif path.exists() or path.is_symlink():
        found = [str(path)]
    elif globlib.has_magic(source):
        found = [p for p in globlib.glob(os.path.expanduser(source), recursive=True) if _is_video_name(p)]
    else:
        raise FileNotFoundError(f"source not found: {source}")
    return sorted((_local_ref(p) for p in found), key=lambda r: r.uri)


def sha256_of_file(path: str, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def content_id(ref: VideoRef) -> str:
    """Identity of the bytes: the S3 ETag when the store gives one, else a SHA-256."""
    if ref.etag:
        return "etag:" + ref.etag.strip('"')
    return sha256_of_file(ref.uri)


def local_path(ref: VideoRef) -> str:
    """A local file path for ffmpeg to read."""
    return ref.uri
