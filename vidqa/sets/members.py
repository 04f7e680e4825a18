"""The members of a video set: a listing source or a SQL selection of scored clips/videos,
each member named by the content id of its bytes and its frame span."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from sqlalchemy.engine import Engine

from vidqa.errors import VideoError
from vidqa.hashing import json_sha256
from vidqa.storage import Storage, VideoRef


@dataclass(frozen=True)
class SetMember:
    """One member of a video set: a whole video, or a frame span ``[start_frame, end_frame)``
    of it (a clip selected in SQL)."""

    uri: str
    content_id: str
    start_frame: int = 0
    end_frame: Optional[int] = None
    ref: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> str:
        return f"{self.content_id}:{self.start_frame}:{'' if self.end_frame is None else self.end_frame}"

    def video_ref(self) -> VideoRef:
        return VideoRef.from_dict(self.ref) if self.ref else VideoRef(uri=self.uri)


def content_digest(members: list[SetMember]) -> str:
    """Identity of a set's content: the sorted content ids and spans of its members (not
    their paths: a renamed copy is the same set, an edited file is not)."""
    keys = sorted(m.key for m in members)
    return json_sha256(keys, spaced=True)


@dataclass(frozen=True)
class SetSource:
    """A listing ``source`` or a SQL selection ``where`` over the ``level`` wide view."""

    source: Optional[str] = None
    where: Optional[str] = None
    level: Literal["clip", "video"] = "clip"
    video_key: str = "video_path"

    def __post_init__(self) -> None:
        if (self.source is None) == (self.where is None):
            raise ValueError("a video set is either a source (folder, s3:// URI, manifest) or a SQL --where, not both")

    @property
    def label(self) -> str:
        return self.source if self.source is not None else f"sql:{self.level}: {self.where}"


@dataclass
class ResolvedSet:
    label: str
    members: list[SetMember]
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return content_digest(self.members)


def _reachable_location(row: dict) -> str:
    """Where to read a scored video: its first URI, else the first of its other locations
    still on disk (a file renamed after it was scored); objects are read where first seen."""
    uris = [row["uri"], *(row.get("locations") or [])]
    for uri in uris:
        if "://" in uri or os.path.exists(uri):
            return uri
    return row["uri"]


def resolve_set(engine: Engine, storage: Storage, src: SetSource, workers: int = 4) -> ResolvedSet:
    """The members of a video set, each with the content id of its bytes now."""
    from vidqa.scoring.ledger import identify

    failures: list[dict[str, str]] = []
    if src.source is not None:
        items = [(ref, 0, None, None) for ref in storage.list_videos(src.source, src.video_key)]
    else:
        from vidqa.db.export import select_rows
        from vidqa.storage.local import local_ref

        rows = select_rows(engine, src.where, src.level)
        items = []
        for row in rows:
            uri = _reachable_location(row)
            ref = VideoRef(uri=uri) if "://" in uri else local_ref(uri)
            if src.level == "clip":
                items.append((ref, int(row["start_frame"]), int(row["end_frame"]), row["content_id"]))
            else:
                items.append((ref, 0, None, row["content_id"]))

    def member_of(item):
        ref, start, end, scored_id = item
        try:
            ref, cid = identify(engine, storage, ref)
        except VideoError as exc:
            return None, {"uri": ref.uri, "stage": exc.stage, "reason": exc.reason, "transient": exc.transient}
        if scored_id is not None and cid != scored_id:
            return None, {"uri": ref.uri, "stage": "read",
                          "reason": "the file changed since it was scored; its clip spans no longer apply"}
        return SetMember(ref.uri, cid, start, end, ref.to_dict()), None

    members: dict[str, SetMember] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for member, failure in pool.map(member_of, items):
            if member is not None:
                # The same bytes and span listed twice (a manifest, overlapping SQL rows) count once.
                members.setdefault(member.key, member)
            else:
                failures.append(failure)
    return ResolvedSet(src.label, list(members.values()), failures)
