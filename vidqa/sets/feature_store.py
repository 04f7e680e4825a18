"""Feature arrays of video sets, as compressed ``.npz`` files in the configured feature storage
(``VIDQA_FEATURE_STORAGE``: a folder or an ``s3://`` prefix; default ``<home>/features``).

Each file holds ``features`` (float32, one row per clip or frame), the float64 ``mean`` and
biased ``cov`` accumulated from them, ``num_items``, and which clip/frame each row came from
(``sample_uris``, ``sample_frames``). Files are written whole (temporary name, then rename or
a single PUT), so a reader never sees a torn file; a file's SHA-256 is kept in Postgres and
checked on read.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from vidqa.config import get_settings


@dataclass
class StoredFeatures:
    features: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    sample_uris: np.ndarray
    sample_frames: np.ndarray

    @property
    def num_items(self) -> int:
        return int(self.features.shape[0])


def feature_root() -> str:
    root = get_settings().feature_storage
    return root.rstrip("/") if root else str(get_settings().home / "features")


def digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def location_for(set_key: str, blob_digest: str, root: Optional[str] = None) -> str:
    """``<root>/<key[:2]>/<key>-<checksum prefix>.npz``."""
    return f"{(root or feature_root()).rstrip('/')}/{set_key[:2]}/{set_key}-{blob_digest.removeprefix('sha256:')[:16]}.npz"


def _s3():
    from vidqa.storage.s3 import S3Options, s3_filesystem

    return s3_filesystem(S3Options.from_settings())


def encode(features: np.ndarray, mean: np.ndarray, cov: np.ndarray, sample_uris: list[str],
           sample_frames: list[int]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(
        buf, features=np.asarray(features, dtype=np.float32), mean=np.asarray(mean, dtype=np.float64),
        cov=np.asarray(cov, dtype=np.float64), num_items=np.int64(len(features)),
        sample_uris=np.asarray(sample_uris, dtype=np.str_), sample_frames=np.asarray(sample_frames, dtype=np.int64),
    )
    return buf.getvalue()


def write(uri: str, blob: bytes) -> str:
    """Store ``blob`` at ``uri``; returns its ``sha256:`` digest."""
    if uri.startswith("s3://"):
        from vidqa.storage.s3 import split_uri

        _s3().pipe_file(split_uri(uri), blob)
    else:
        path = Path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
    return digest(blob)


def exists(uri: str) -> bool:
    if uri.startswith("s3://"):
        from vidqa.storage.s3 import split_uri

        return bool(_s3().exists(split_uri(uri)))
    return Path(uri).is_file()


class FeatureFileError(OSError):
    """A stored feature file is missing or not what Postgres recorded."""


def read(uri: str, sha256: Optional[str] = None) -> StoredFeatures:
    try:
        if uri.startswith("s3://"):
            from vidqa.storage.s3 import split_uri

            blob = _s3().cat_file(split_uri(uri))
        else:
            blob = Path(uri).read_bytes()
    except OSError as exc:
        raise FeatureFileError(f"cannot read stored features {uri}: {exc}") from None
    if sha256 and digest(blob) != sha256:
        raise FeatureFileError(f"stored features {uri} do not match their recorded checksum {sha256}")
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        return StoredFeatures(
            features=np.array(data["features"]), mean=np.array(data["mean"]), cov=np.array(data["cov"]),
            sample_uris=np.array(data["sample_uris"]), sample_frames=np.array(data["sample_frames"]),
        )


__all__ = ["FeatureFileError", "StoredFeatures", "digest", "encode", "exists", "feature_root", "location_for", "read", "write"]
