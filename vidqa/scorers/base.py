"""What every scorer is: a named, hashed configuration that scores clips from shared frames."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from vidqa.audio import AudioClip, AudioRequest
from vidqa.clips import ClipSpan
from vidqa.frames import Frames
from vidqa.probe import VideoProbe
from vidqa.sampling import SamplingSpec


class Resources(BaseModel):
    """What a scorer needs from a worker (Cosmos-Curate style stage declaration)."""

    model_config = ConfigDict(frozen=True)

    gpus: float = Field(0.0, ge=0, description="GPU share per worker (0 = CPU only).")
    batch_size: int = Field(1, ge=1, description="Clips scored per call.")


def stable_hash(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def input_hash(inputs: dict[str, Any]) -> str:
    """Identity of the text a score was computed from; '' for scorers that read none."""
    return stable_hash(inputs) if inputs else ""


class Runtime(BaseModel):
    """Where and how fast a scorer runs; never part of a score's identity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present.")
    batch_size: int = Field(64, ge=1, description="Frames per encoder batch.")


class ScorerConfig(BaseModel):
    """Base of every scorer's configuration; ``sampling`` decides which frames it sees."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sampling: SamplingSpec = Field(default_factory=SamplingSpec, description="Frames this scorer sees.")
    runtime: Runtime = Field(default_factory=Runtime, description="Device and batch size (do not change scores).")


@dataclass
class ScoreItem:
    """One subject to score: a clip of a video with its decoded frames and text fields."""

    uri: str
    probe: VideoProbe
    frames: Frames
    fields: dict[str, Any] = field(default_factory=dict)
    clip: Optional[ClipSpan] = None
    # The clip's audio, decoded for scorers whose ``audio_request`` asked for it.
    audio: Optional[AudioClip] = None


@dataclass
class Metric:
    value: Optional[float]
    details: Optional[dict] = None

    @classmethod
    def of(cls, value: Optional[float], details: Optional[dict] = None) -> "Metric":
        # NaN and infinities are not scores: store NULL and say why.
        if value is not None and not math.isfinite(value):
            return cls(None, {**(details or {}), "undefined": f"non-finite value {value!r}"})
        return cls(value, details)


class Scorer:
    """Subclasses set ``name``, ``version``, ``config_model``, ``metrics`` and implement ``score``.

    A scorer instance holds its model (if any) for the life of the worker process.
    """

    name: ClassVar[str]
    # Bump when the computation changes, so stored scores of the old code are not reused.
    version: ClassVar[str] = "1"
    config_model: ClassVar[type[ScorerConfig]] = ScorerConfig
    metrics: ClassVar[tuple[str, ...]] = ()
    resources: ClassVar[Resources] = Resources()

    def __init__(self, config: Optional[ScorerConfig | dict] = None):
        if config is None:
            config = self.config_model()
        elif isinstance(config, dict):
            config = self.config_model.model_validate(config)
        self.config = config

    @property
    def sampling(self) -> SamplingSpec:
        return self.config.sampling

    @property
    def queue_size(self) -> int:
        """Clips a worker gathers before calling :meth:`score` once."""
        return self.resources.batch_size

    def identity(self) -> dict[str, Any]:
        """What the scores depend on; its hash is ``config_hash``. Settings that do not
        change a score (device, batch size) stay out."""
        config = self.config.model_dump(mode="json", exclude={"runtime"})
        return {"scorer": self.name, "version": self.version, "config": config, **self.model_identity()}

    def model_identity(self) -> dict[str, Any]:
        """Identity of loaded weights (a checkpoint's hash), for scorers with models."""
        return {}

    def context_for(self, rows: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        """Run-level context from every ``(uri, fields)`` row of the source (computed once
        per run, before scoring, and handed to :meth:`bind` in every worker)."""
        return {}

    def bind(self, context: dict[str, Any]) -> None:
        """Receive run-level context computed over the whole source (e.g. an IDF table)."""

    def inputs(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The text fields of a manifest row this scorer reads; part of each score's
        identity. Raises ScorerError when a required field is missing."""
        return {}

    def audio_request(self, fields: dict[str, Any]) -> Optional[AudioRequest]:
        """The audio this scorer must hear for a row (decoded by the pipeline per clip, while
        the video file is at hand), or None when it needs none."""
        return None

    @property
    def config_hash(self) -> str:
        return stable_hash(self.identity())

    def score(self, items: list[ScoreItem]) -> list[dict[str, Metric] | Exception]:
        """Score a batch; one entry per item: its metrics, or the exception that failed it."""
        raise NotImplementedError
