"""A local, content-addressed cache of remote objects, bounded in size.

Files are keyed by what the store says the bytes are (ETag and size), never by URI:
an object copied to another key is not fetched twice, and an overwritten object (new
ETag) is never served stale. Readers hold a shared ``flock`` on the file while ffmpeg
reads it; eviction takes an exclusive lock without waiting and skips what it cannot
lock, so several worker processes can share one cache directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import threading
import uuid
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from vidqa.storage.refs import VideoRef

log = logging.getLogger(__name__)

_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")


class CacheIntegrityError(OSError):
    """Downloaded bytes do not match the store's size or MD5 ETag (a torn transfer)."""


def cache_key(ref: VideoRef) -> str:
    if not ref.etag or ref.size is None:
        raise ValueError(f"{ref.uri}: the cache needs the object's ETag and size")
    etag = ref.etag.strip('"').lower()
    return hashlib.sha256(f"{etag}:{ref.size}".encode()).hexdigest()


class ObjectCache:
    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def path_for(self, ref: VideoRef) -> Path:
        key = cache_key(ref)
        # Keep the extension: some demuxers use it as a hint.
        suffix = PurePosixPath(ref.uri).suffix.lower()[:8]
        return self.root / "objects" / key[:2] / f"{key}{suffix}"

    def _key_lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    @contextlib.contextmanager
    def open(self, ref: VideoRef, download: Callable[[str], None]) -> Iterator[str]:
        """A local path holding ``ref``'s bytes for the duration of the ``with`` block.

        ``download(tmp_path)`` writes the object to ``tmp_path``; it runs only on a miss.
        The file is verified (size; MD5 when the ETag is one) before it becomes visible.
        """
        path = self.path_for(ref)
        with self._key_lock(path.name):
            while True:
                if not path.exists():
                    self._fetch(ref, path, download)
                fd = os.open(path, os.O_RDONLY)
                fcntl.flock(fd, fcntl.LOCK_SH)
                # An evictor may have unlinked the file between exists() and flock():
                # only use it if the name still points at the inode we locked.
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(path))
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(fd)
        try:
            os.utime(path)  # recency for LRU eviction
            yield str(path)
        finally:
            os.close(fd)

    def _fetch(self, ref: VideoRef, path: Path, download: Callable[[str], None]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        try:
            download(str(tmp))
            self._verify(ref, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        log.info("fetched %s (%d bytes) into the cache", ref.uri, ref.size)
        self.evict(keep=path)

    @staticmethod
    def _verify(ref: VideoRef, tmp: Path) -> None:
        size = tmp.stat().st_size
        if size != ref.size:
            raise CacheIntegrityError(f"{ref.uri}: got {size} bytes, the store lists {ref.size}")
        etag = (ref.etag or "").strip('"').lower()
        if _MD5_ETAG.match(etag):
            digest = hashlib.md5(usedforsecurity=False)
            with open(tmp, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
            if digest.hexdigest() != etag:
                raise CacheIntegrityError(f"{ref.uri}: MD5 {digest.hexdigest()} does not match ETag {etag}")

    def entries(self) -> list[Path]:
        objects = self.root / "objects"
        if not objects.exists():
            return []
        return [p for p in objects.glob("*/*") if p.is_file() and not p.name.startswith(".")]

    def size_bytes(self) -> int:
        total = 0
        for p in self.entries():
            with contextlib.suppress(FileNotFoundError):
                total += p.stat().st_size
        return total

    def evict(self, keep: Path | None = None) -> int:
        """Delete least recently used files until the cache fits ``max_bytes``; files in
        use (locked by a reader) and ``keep`` stay. Returns bytes freed."""
        stats = []
        for p in self.entries():
            with contextlib.suppress(FileNotFoundError):
                stats.append((p, p.stat()))
        total = sum(st.st_size for _, st in stats)
        freed = 0
        for p, st in sorted(stats, key=lambda item: item[1].st_mtime):
            if total - freed <= self.max_bytes:
                break
            if keep is not None and p == keep:
                continue
            try:
                fd = os.open(p, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                p.unlink(missing_ok=True)
                freed += st.st_size
            finally:
                os.close(fd)
        return freed
