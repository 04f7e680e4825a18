"""The two hashes identities are made of: of a file's bytes, and of a JSON value.

Every stored identity (content ids, config hashes, split and feature-set keys, cache keys) is
one of these; changing how one is computed changes what is stored, so both are pinned by
tests against literal digests.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

_CHUNK = 1 << 22
_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, remembered per (real path, size, mtime) in this process.

    A Hugging Face cache blob (``blobs/<sha256>``, what snapshot files link to) is named by its
    SHA-256 already, so a 1 GB checkpoint there is not read again.
    """
    real = os.path.realpath(path)
    blob = Path(real)
    if blob.parent.name == "blobs" and len(blob.name) == 64 and all(c in "0123456789abcdef" for c in blob.name):
        return blob.name
    stat = os.stat(real)
    key = (real, stat.st_size, stat.st_mtime_ns)
    digest = _FILE_DIGESTS.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(real, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
        digest = _FILE_DIGESTS[key] = h.hexdigest()
    return digest


def json_sha256(value: Any, *, spaced: bool = False) -> str:
    """Hex SHA-256 of ``value`` as JSON with sorted keys.

    The compact form (``,`` and ``:`` separators; non-JSON values as ``str``) is the canonical
    one. ``spaced=True`` is ``json.dumps``' default form, with which CLIP model configs, clip
    splits and feature sets were first hashed; their stored keys depend on it.
    """
    if spaced:
        text = json.dumps(value, sort_keys=True)
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stable_hash(value: Any) -> str:
    """The 16-hex-digit identity of a JSON value: scorer configuration hashes, input hashes,
    shard cache keys."""
    return json_sha256(value)[:16]
