"""Local folders, globs and files."""

from __future__ import annotations

import glob as globlib
import os
from pathlib import Path

from vidqa.errors import VideoError
from vidqa.hashing import file_sha256
from vidqa.storage.refs import VideoRef, is_video_name
from vidqa.storage.uris import local_uri


def local_ref(path: str, **fields) -> VideoRef:
    """The file at ``path`` under its one spelling (its real path, see ``storage.uris``)."""
    uri = local_uri(path)
    try:
        st = os.stat(uri)
        return VideoRef(uri=uri, size=st.st_size, mtime=st.st_mtime, fields=fields)
    except OSError:
        # Listed but not stat-able (dangling link, vanished): reading it records the reason.
        return VideoRef(uri=uri, fields=fields)


def list_local(source: str) -> list[VideoRef]:
    """Videos under a folder (recursive), matching a glob, or one file. Sorted by URI.

    In folders and globs only files with a video extension are taken; a single file is
    taken whatever its name, so a user who names a file gets a verdict on it.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        found = [
            os.path.join(root, name)
            for root, _dirs, names in os.walk(path, followlinks=True)
            for name in names
            if is_video_name(name)
        ]
    elif path.exists() or path.is_symlink():
        found = [str(path)]
    elif globlib.has_magic(source):
        found = [p for p in globlib.glob(os.path.expanduser(source), recursive=True) if is_video_name(p)]
    else:
        raise FileNotFoundError(f"source not found: {source}")
    # Two names of one file (a link beside its target) are one video.
    refs = {ref.uri: ref for ref in map(local_ref, found)}
    return sorted(refs.values(), key=lambda r: r.uri)


def local_content_id(path: str) -> str:
    """A local file's content id: ``sha256:`` and the hex SHA-256 of its bytes."""
    return "sha256:" + file_sha256(path)


def read_error(exc: OSError) -> VideoError:
    """A local read failure as a recorded reason."""
    if isinstance(exc, FileNotFoundError):
        return VideoError("file not found", stage="read", transient=True)
    if isinstance(exc, PermissionError):
        return VideoError("permission denied", stage="read", transient=True)
    if isinstance(exc, IsADirectoryError):
        return VideoError("is a directory, not a file", stage="read")
    return VideoError(f"cannot read: {exc.strerror or exc}", stage="read", transient=True)
