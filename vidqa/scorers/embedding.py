"""Clip embeddings only: a clip's frames through CLIP, pooled and stored in ``clip_embeddings``
(see :mod:`vidqa.scoring.embeddings`), for when no other CLIP scorer runs. With EMScore's
frames (the default: one per second, ViT-B/32) beside EMScore it encodes nothing more."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from vidqa.scorers.base import Metric, ScoreItem, ScorerConfig
from vidqa.scorers.clip_based import ClipBasedConfig, ClipBasedScorer
from vidqa.scorers.emscore import EMScoreConfig
from vidqa.video.sampling import SamplingSpec


class EmbeddingConfig(ClipBasedConfig):
    sampling: SamplingSpec = Field(
        default_factory=EMScoreConfig.model_fields["sampling"].default_factory,
        description="Frames pooled into the clip's embedding (default: EMScore's, one per second).")


class EmbeddingScorer(ClipBasedScorer):
    name: ClassVar[str] = "embedding"
    title: ClassVar[str] = "Clip embeddings"
    summary: ClassVar[str] = "Pooled CLIP embedding of each clip, kept in clip_embeddings (no score)."
    version: ClassVar[str] = "1"
    config_model: ClassVar[type[ScorerConfig]] = EmbeddingConfig
    metrics: ClassVar[tuple[str, ...]] = ("embedding_frames",)

    def score(self, items: list[ScoreItem]) -> list[dict[str, Metric] | Exception]:
        embeddings = self.encode_frames([item.frames for item in items])
        return [{"embedding_frames": Metric.of(float(e.shape[0]), {"dim": int(e.shape[1])})} for e in embeddings]
