"""CLIP temporal consistency of a clip: consecutive frames' CLIP embeddings compared (VBench's
background-consistency idea; formulas in :mod:`vidqa.metrics.consistency`). No model of its
own: with the same CLIP and frames as EMScore (its defaults: ViT-B/32 OpenAI, one frame per
second) it reads the embeddings EMScore's encoder pass already made."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from vidqa.metrics import consistency as cm
from vidqa.scorers.base import Metric, ScoreItem, ScorerConfig
from vidqa.scorers.clip_based import ClipBasedConfig, ClipBasedScorer, ClipModelConfig
from vidqa.scorers.emscore import EMScoreConfig
from vidqa.video.sampling import SamplingSpec


class ClipConsistencyConfig(ClipBasedConfig):
    clip: ClipModelConfig = Field(default_factory=ClipModelConfig, description="CLIP model (VBench: ViT-B/32).")
    sampling: SamplingSpec = Field(
        default_factory=EMScoreConfig.model_fields["sampling"].default_factory,
        description="Frames compared in order (EMScore's frames by default, so their embeddings are shared).",
    )


class ClipConsistencyScorer(ClipBasedScorer):
    name: ClassVar[str] = "clip_consistency"
    title: ClassVar[str] = "CLIP temporal consistency"
    summary: ClassVar[str] = "How alike consecutive frames' CLIP embeddings are (VBench background consistency)."
    version: ClassVar[str] = "1"
    config_model: ClassVar[type[ScorerConfig]] = ClipConsistencyConfig
    metrics: ClassVar[tuple[str, ...]] = ("clip_adjacent_similarity", "clip_background_consistency")

    def score(self, items: list[ScoreItem]) -> list[dict[str, Metric] | Exception]:
        out = []
        for item, embeddings in zip(items, self.encode_frames([item.frames for item in items])):
            details = {"frames": int(embeddings.shape[0])}
            if embeddings.shape[0] < 2:
                undefined = {**details, "undefined": "temporal consistency needs at least two frames"}
                out.append({m: Metric(None, undefined) for m in self.metrics})
                continue
            out.append({"clip_adjacent_similarity": Metric.of(cm.adjacent_similarity(embeddings), details),
                        "clip_background_consistency": Metric.of(cm.vbench_background_consistency(embeddings),
                                                                 details)})
        return out
