"""S3 (and S3-compatible) object storage through s3fs."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Optional

from pydantic import SecretStr

from vidqa.storage.breaker import EndpointDown
from vidqa.config import Settings, get_settings
from vidqa.errors import VideoError
from vidqa.storage.refs import VideoRef, is_video_name
from vidqa.storage.uris import s3_uri


@dataclass(frozen=True)
class S3Options:
    """Where and as whom to reach S3. Secrets stay ``SecretStr``: their repr is masked,
    so they cannot leak into logs, task parameters or the database."""

    endpoint_url: Optional[str] = None
    region: Optional[str] = None
    access_key_id: Optional[SecretStr] = None
    secret_access_key: Optional[SecretStr] = None
    session_token: Optional[SecretStr] = None
    profile: Optional[str] = None

    @classmethod
    def from_settings(cls, settings: Optional[Settings] = None) -> "S3Options":
        s = settings or get_settings()
        return cls(
            endpoint_url=s.s3_endpoint_url,
            region=s.s3_region,
            access_key_id=s.s3_access_key_id,
            secret_access_key=s.s3_secret_access_key,
            session_token=s.s3_session_token,
            profile=s.s3_profile,
        )

    def filesystem_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``s3fs.S3FileSystem``; unset fields defer to the AWS
        default chain (environment, shared config, instance role)."""
        kwargs: dict[str, Any] = {"client_kwargs": {}}
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        if self.region:
            kwargs["client_kwargs"]["region_name"] = self.region
        if self.access_key_id:
            kwargs["key"] = reveal(self.access_key_id)
            kwargs["secret"] = reveal(self.secret_access_key)
        if self.session_token:
            kwargs["token"] = reveal(self.session_token)
        if self.profile:
            kwargs["profile"] = self.profile
        return kwargs


def reveal(value: Optional[SecretStr]) -> Optional[str]:
    """A secret's text, only where a client needs it."""
    return value.get_secret_value() if value is not None else None


_filesystems: dict[S3Options, Any] = {}
_lock = threading.Lock()


def s3_filesystem(options: S3Options):
    """One ``S3FileSystem`` per options in this process (connection pools are reused)."""
    import s3fs

    with _lock:
        fs = _filesystems.get(options)
        if fs is None:
            fs = s3fs.S3FileSystem(skip_instance_cache=True, **options.filesystem_kwargs())
            _filesystems[options] = fs
        return fs


def split_uri(uri: str) -> str:
    """``s3://bucket/key`` -> ``bucket/key`` (s3fs paths)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return uri[len("s3://"):]


def _ref(info: dict[str, Any], **fields) -> VideoRef:
    modified = info.get("LastModified")
    return VideoRef(
        uri=s3_uri("s3://" + info["name"]),
        size=info.get("size"),
        mtime=modified.timestamp() if modified is not None else None,
        etag=(info.get("ETag") or "").strip('"') or None,
        fields=fields,
    )


def list_s3(source: str, options: S3Options) -> list[VideoRef]:
    """Objects with a video extension under ``s3://bucket/prefix`` (recursive), matching an
    ``s3://`` glob, or the one object named. Listing gives each object's ETag and size, so
    identifying a video never downloads it."""
    fs = s3_filesystem(options)
    path = split_uri(source)
    if any(c in path for c in "*?["):
        infos = fs.glob(path, detail=True).values()
        infos = [i for i in infos if i.get("type") == "file" and is_video_name(i["name"])]
    else:
        # `find` lists without a delimiter: one flat paginated listing of the prefix.
        found = fs.find(path, detail=True)
        if not found:
            raise FileNotFoundError(f"source not found: {source}")
        infos = [i for i in found.values() if i.get("type") == "file"]
        # A named object is taken whatever its name; under a prefix, only video names.
        single = len(infos) == 1 and infos[0]["name"].rstrip("/") == path.rstrip("/")
        if not single:
            infos = [i for i in infos if is_video_name(i["name"])]
    return sorted((_ref(i) for i in infos), key=lambda r: r.uri)


def stat_s3(ref: VideoRef, options: S3Options) -> VideoRef:
    """``ref`` with size, mtime and ETag from a HEAD request (manifests name objects
    without them)."""
    info = s3_filesystem(options).info(split_uri(ref.uri))
    return _ref(info, **ref.fields)


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying: network trouble and throttling, not missing objects or
    denied access."""
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, ValueError)):
        return False
    return isinstance(exc, (OSError, ConnectionError, TimeoutError)) or "Throttl" in type(exc).__name__ \
        or "SlowDown" in str(exc) or "EndpointConnectionError" in type(exc).__name__


def s3_error(exc: BaseException, uri: str) -> VideoError:
    """An S3 failure as a recorded reason (credentials never appear: s3fs messages hold
    none, and the reason is built from the error's kind)."""
    if isinstance(exc, FileNotFoundError):
        return VideoError(f"object not found: {uri}", stage="fetch", transient=True)
    if isinstance(exc, PermissionError):
        return VideoError(f"permission denied: {exc}", stage="fetch", transient=True)
    if isinstance(exc, EndpointDown):
        return VideoError(f"not fetched: {exc}", stage="fetch", transient=True)
    return VideoError(f"cannot fetch: {type(exc).__name__}: {exc}", stage="fetch", transient=True)
