"""The unit of work that crosses the Prefect boundary: a shard of listed videos with the run's
prepared scorers, clip split and credentials name. The local path (a task per shard) and
the fanned-out path (a flow run per shard) take the same :class:`ShardJob`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

from vidqa.hashing import stable_hash
from vidqa.storage import VideoRef
from vidqa.video.clips import ClipSpec


@dataclass
class ScorerSpec:
    """A scorer by name and configuration: what crosses task boundaries (never the model)."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)
    # Run-level context computed over the whole source (e.g. EMScore's IDF corpus).
    context: dict[str, Any] = field(default_factory=dict)
    # Identity of the scorer (configuration, context, weight files), set by prepare_scorers;
    # the ledger and caches key on it.
    config_hash: Optional[str] = None


class ShardJob(BaseModel):
    """One shard of a run: its videos as listed, and everything to score them alike anywhere."""

    model_config = ConfigDict(extra="forbid")

    run_id: Optional[str] = Field(None, title="Run", description="The vidqa run (runs.id) this shard belongs to.")
    shard_index: int = Field(0, ge=0, title="Shard index")
    refs: list[VideoRef] = Field(..., title="Videos", description="Listed video references.")
    scorers: list[ScorerSpec] = Field(..., title="Prepared scorers")
    clips: ClipSpec = Field(default_factory=ClipSpec, title="Clips")
    aws_credentials_block: Optional[str] = Field(None, title="AWS credentials block")
    from_embeddings: bool = Field(False, title="From stored embeddings",
                                  description="Score from the frame embeddings stored by an earlier run; decode nothing.")

    def identity(self, database: str) -> Optional[str]:
        """The identity of scoring this shard: every video's identity, every scorer's
        ``config_hash``, the clip split and the ledger (``database``) it writes to. Equal
        identity means equal results. None when some part cannot be named without reading
        data (then nothing may be reused). The run and the shard's index are not part of it."""
        videos = [ref_identity(r) for r in self.refs]
        if any(v is None for v in videos) or any(s.config_hash is None for s in self.scorers):
            return None
        return stable_hash({
            "videos": videos,
            "scorers": sorted((s.name, s.config_hash) for s in self.scorers),
            "clips": self.clips.split_hash,
            "database": database,
            # Only when set, so that the identity of every other shard stays what it was.
            **({"from_embeddings": True} if self.from_embeddings else {}),
        })


def ref_identity(ref: VideoRef) -> Optional[dict[str, Any]]:
    """What a listed video is, without reading it: URI, the store's ETag and size (objects) or
    size and mtime (local files), and the manifest fields. None when the listing did not say
    (an object named by a manifest has no ETag until it is asked for)."""
    if ref.is_remote:
        content = {"etag": ref.etag, "size": ref.size} if ref.etag else None
    else:
        content = {"size": ref.size, "mtime": ref.mtime} if ref.size is not None and ref.mtime is not None else None
    return None if content is None else {"uri": ref.uri, **content, "fields": ref.fields}
