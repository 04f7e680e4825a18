"""A video as a source lists it, before anything reads it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import Any, Optional

VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mkv .mov .avi .webm .mpg .mpeg .ts .mts .m2ts .flv .wmv .3gp .ogv .gif".split()
)


@dataclass
class VideoRef:
    """A listed video: its URI, what the store says about its bytes, and its manifest fields.

    ``fields`` carries a manifest row's text (``candidate``, ``reference``, ``prompt``,
    ``audio_path``, ``audio_text``, ...) to the scorers. No credentials ever live here:
    refs cross task boundaries and end up in Prefect's result storage.
    """

    uri: str
    size: Optional[int] = None
    mtime: Optional[float] = None
    etag: Optional[str] = None
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def is_remote(self) -> bool:
        return "://" in self.uri

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "VideoRef":
        return cls(**data)


def is_video_name(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in VIDEO_EXTENSIONS
