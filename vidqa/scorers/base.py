"""What every scorer is: a named, hashed configuration that scores clips from shared frames."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

from pydantic import BaseModel, ConfigDict, Field

from vidqa.clips import ClipSpan
from vidqa.frames import Frames
from vidqa.probe import VideoProbe
from vidqa.sampling import SamplingSpec


class Resources(BaseModel):
    """What a scorer needs from a worker (Cosmos-Curate style stage declaration)."""

    model_config = ConfigDict(frozen=True)

    gpus: float = Field(0.0, ge=0, description="GPU share per worker (0 = CPU only).")
    batch_size: int = Field(1, ge=1, description="Clips scored per call.")


class ScorerConfig(BaseModel):
    """Base of every scorer's configuration; ``sampling`` decides which frames it sees."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sampling: SamplingSpec = Field(default_factory=SamplingSpec, description="Frames this scorer sees.")


@dataclass
class ScoreItem:
    """One subject to score: a clip of a video with its decoded frames and text fields."""

    uri: str
    probe: VideoProbe
    frames: Frames
    fields: dict[str, Any] = field(default_factory=dict)
    clip: Optional[ClipSpan] = None


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

    def identity(self) -> dict[str, Any]:
        return {"scorer": self.name, "version": self.version, "config": self.config.model_dump(mode="json")}

    @property
    def config_hash(self) -> str:
        canonical = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def score(self, items: list[ScoreItem]) -> list[dict[str, Metric] | Exception]:
        """Score a batch; one entry per item: its metrics, or the exception that failed it."""
        raise NotImplementedError
