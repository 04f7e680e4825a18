"""One spelling per location: the URI a video is stored and compared under.

A local file's URI is its real path: absolute, symlinks resolved, ``.`` and ``..`` gone,
so ``../x/a.mp4``, ``./x//a.mp4``, ``/abs/x/a.mp4`` and a link to the folder all name one
video. An ``s3://`` URI keeps its bucket and key exactly, less the spelling noise of a
hand-written URI: blanks around it, the scheme's case, a trailing ``/`` (S3 allows them in
keys, but a key ending in ``/`` is a folder marker, not a video, and no listing yields
blanks around a URI).
Empty and ``.`` segments are kept: S3 keys are plain strings, so ``s3://b/p//a.mp4`` and
``s3://b/p/a.mp4`` are two objects (s3fs reads them as such). Two spellings of the same
bytes meet anyway, through their content id (see ``docs/identity.md``).
"""

from __future__ import annotations

import os


def local_uri(path: str) -> str:
    """The real path of ``path`` (``~`` expanded). A dangling link keeps its own name (in
    its real folder), so the failure it records names what the user listed."""
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.islink(path) and not os.path.exists(path):
        return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    return os.path.realpath(path)


def s3_uri(uri: str) -> str:
    """``uri`` (``s3://bucket/key``) in its one spelling."""
    text = uri.strip()
    if not text.lower().startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return "s3://" + text[len("s3://"):].rstrip("/")


def normalise_uri(location: str) -> str:
    """The stored spelling of a local path or an ``s3://`` URI; other schemes unchanged
    (reading them records that the scheme is unsupported)."""
    text = location.strip()
    if text.lower().startswith("s3://"):
        return s3_uri(text)
    if text.startswith("file://"):
        return local_uri(text[len("file://"):])
    if "://" in text:
        return text
    return local_uri(location)


__all__ = ["local_uri", "s3_uri", "normalise_uri"]
