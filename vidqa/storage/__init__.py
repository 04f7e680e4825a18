"""Where videos come from (local folders and globs, ``s3://`` prefixes, manifests) and how
their bytes reach a local path for ffmpeg."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, Optional

from vidqa.config import get_settings
from vidqa.errors import VideoError
from vidqa.retry import call_with_retries
from vidqa.storage import breaker, s3
from vidqa.storage.cache import CacheIntegrityError, ObjectCache
from vidqa.storage.local import UNLISTABLE, list_local, local_ref, local_content_id, read_error
from vidqa.storage.manifest import ManifestError, is_manifest, manifest_entries, parse_manifest
from vidqa.storage.refs import VideoRef
from vidqa.storage.s3 import S3Options
from vidqa.storage.uris import normalise_uri


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, CacheIntegrityError) or s3.is_transient(exc)


def _endpoint_trouble(exc: BaseException) -> bool:
    # A torn transfer that fails its integrity check is retried, but says nothing of the
    # endpoint's health: only network trouble and throttling feed its breaker.
    return s3.is_transient(exc) and not isinstance(exc, CacheIntegrityError)


def _retryable(exc: BaseException) -> bool:
    # An open breaker is not retried: the endpoint was found down by the requests before.
    return _transient(exc) and not isinstance(exc, breaker.EndpointDown)


class Storage:
    """Lists sources and materialises videos, with one S3 configuration and one cache."""

    def __init__(self, s3_options: Optional[S3Options] = None, cache: Optional[ObjectCache] = None,
                 attempts: int = 5, base_delay_s: float = 0.5):
        settings = get_settings()
        self.s3_options = s3_options or S3Options.from_settings(settings)
        self.cache = cache or ObjectCache(settings.cache_dir, int(settings.cache_max_gb * 2**30))
        self.attempts = attempts
        self.base_delay_s = base_delay_s

    def _retry(self, fn, what: str):
        return call_with_retries(fn, is_transient=_transient, attempts=self.attempts,
                                 base_delay_s=self.base_delay_s, what=what)

    def _object_call(self, fn, what: str):
        """One object's request, retried, each attempt behind its endpoint's circuit breaker
        (so an outage stops the retries of the object that found it, and every object after)."""
        endpoint = self.s3_options.endpoint_url or "AWS S3"
        return call_with_retries(lambda: breaker.guarded(endpoint, fn, _endpoint_trouble), is_transient=_retryable,
                                 attempts=self.attempts, base_delay_s=self.base_delay_s, what=what)

    # -- listing ---------------------------------------------------------------------

    def list_videos(self, source: str, video_key: str = "video_path") -> list[VideoRef]:
        """The videos of ``source``: a folder, glob or file; ``s3://bucket/prefix`` or an
        ``s3://`` glob; or a manifest (``.jsonl``/``.csv``, local or on S3)."""
        source = source.removeprefix("file://")
        if is_manifest(source):
            return self._list_manifest(source, video_key)
        if source.startswith("s3://"):
            return self._retry(lambda: s3.list_s3(source, self.s3_options), f"listing {source}")
        if "://" in source:
            raise ValueError(f"unsupported source {source!r}: give a local folder, glob or file, "
                             "an s3:// URI, or a .jsonl/.csv manifest")
        return list_local(source)

    def _list_manifest(self, source: str, video_key: str) -> list[VideoRef]:
        if source.startswith("s3://"):
            fs = s3.s3_filesystem(self.s3_options)
            text = self._retry(lambda: fs.cat_file(s3.split_uri(source)).decode("utf-8"), f"reading {source}")
            base = source.rsplit("/", 1)[0]
        else:
            path = Path(source).expanduser()
            if not path.exists():
                raise FileNotFoundError(f"source not found: {source}")
            text = path.read_text(encoding="utf-8")
            base = str(path.absolute().parent)
        entries = manifest_entries(parse_manifest(text, source), base, source, video_key)
        return [
            local_ref(location.removeprefix("file://"), **fields) if "://" not in location.removeprefix("file://")
            else VideoRef(uri=normalise_uri(location), fields=fields)
            for location, fields in entries
        ]

    # -- identity and bytes ----------------------------------------------------------

    def resolve(self, ref: VideoRef) -> VideoRef:
        """``ref`` with what the store knows about its bytes (a remote ref listed by a
        manifest has no ETag yet). Raises ``VideoError`` when the object is unreachable."""
        if not ref.is_remote or (ref.etag and ref.size is not None):
            return ref
        self._check_scheme(ref)
        try:
            return self._object_call(lambda: s3.stat_s3(ref, self.s3_options), f"stat {ref.uri}")
        except Exception as exc:
            raise s3.s3_error(exc, ref.uri) from None

    def content_id(self, ref: VideoRef) -> str:
        """Identity of the bytes: the store's ETag for objects, a SHA-256 for local files."""
        if ref.is_remote:
            ref = self.resolve(ref)
            return "etag:" + ref.etag.strip('"')
        if ref.fields.get(UNLISTABLE):
            raise VideoError(ref.fields[UNLISTABLE], stage="read", transient=True)
        try:
            return local_content_id(ref.uri)
        except OSError as exc:
            raise read_error(exc) from None

    @contextlib.contextmanager
    def local_file(self, ref: VideoRef) -> Iterator[str]:
        """A local path with the video's bytes while the block runs (fetched through the
        cache for remote objects)."""
        if not ref.is_remote:
            yield ref.uri
            return
        ref = self.resolve(ref)
        fs = s3.s3_filesystem(self.s3_options)
        key = s3.split_uri(ref.uri)

        with contextlib.ExitStack() as stack:
            # A torn or failed transfer is retried whole: download and verification.
            enter = lambda: stack.enter_context(self.cache.open(ref, lambda tmp: fs.get_file(key, tmp)))
            try:
                path = self._object_call(enter, f"fetching {ref.uri}")
            except Exception as exc:
                raise s3.s3_error(exc, ref.uri) from None
            yield path

    @staticmethod
    def _check_scheme(ref: VideoRef) -> None:
        if not ref.uri.startswith("s3://"):
            raise VideoError(f"unsupported URI scheme: {ref.uri}", stage="read")


def list_videos(source: str, video_key: str = "video_path") -> list[VideoRef]:
    """Shorthand for ``Storage().list_videos`` with settings from the environment."""
    return Storage().list_videos(source, video_key)


__all__ = [
    "ManifestError", "ObjectCache", "S3Options", "Storage", "VideoRef", "list_videos",
    "local_content_id",
]
