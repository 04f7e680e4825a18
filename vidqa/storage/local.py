"""Local folders, globs and files."""

from __future__ import annotations

import glob as globlib
import os
import stat
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
    taken whatever its name, so a user who names a file gets a verdict on it. A folder
    reached twice (a link to itself or to an ancestor) is walked once, by its (device,
    inode); a folder that cannot be read is listed as a failed entry with its reason.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        found, unreadable = _walk(str(path))
    elif path.exists() or path.is_symlink():
        found, unreadable = [str(path)], []
    elif globlib.has_magic(source):
        found = [p for p in globlib.glob(os.path.expanduser(source), recursive=True) if is_video_name(p)]
        unreadable = []
    else:
        raise FileNotFoundError(f"source not found: {source}")
    # Two names of one file (a link beside its target) are one video.
    refs = {ref.uri: ref for ref in map(local_ref, found)}
    for folder, reason in unreadable:
        uri = local_uri(folder)
        refs.setdefault(uri, VideoRef(uri=uri, fields={UNLISTABLE: reason}))
    return sorted(refs.values(), key=lambda r: r.uri)


# A ref's field naming why its folder could not be listed (no scorer reads it).
UNLISTABLE = "vidqa_unlistable"


def _walk(root: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Video files under ``root`` following links, each folder once; and the folders that
    could not be read, with why."""
    found: list[str] = []
    unreadable: list[tuple[str, str]] = []
    seen: set[tuple[int, int]] = set()

    def refused(exc: OSError) -> None:
        unreadable.append((exc.filename or root, f"cannot list folder: {exc.strerror or exc}"))

    for folder, dirs, names in os.walk(root, followlinks=True, onerror=refused):
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []  # a cycle (or a second link to a folder walked already)
            continue
        seen.add((st.st_dev, st.st_ino))
        found.extend(os.path.join(folder, name) for name in names if is_video_name(name))
    return found, unreadable


_NOT_REGULAR = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def local_content_id(path: str) -> str:
    """A local file's content id: ``sha256:`` and the hex SHA-256 of its bytes. Only a regular
    file is opened: reading a FIFO or ``/dev/zero`` would never end."""
    mode = os.stat(path).st_mode
    for test, what in _NOT_REGULAR:
        if test(mode):
            raise VideoError(f"not a regular file: {what}", stage="read")
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
