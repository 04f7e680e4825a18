"""LAION aesthetic score of a clip: CLIP ViT-L/14 frame embeddings through the LAION head,
averaged over the clip's frames (Open-Sora: frames at 10%, 50% and 90% of the clip)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field

from vidqa.errors import ScorerError
from vidqa.models.aesthetic import AestheticHead, AestheticHeadWeights, aesthetic_scores
from vidqa.video.sampling import SamplingSpec
from vidqa.scorers.base import Metric, ScoreItem, ScorerConfig, Weights
from vidqa.scorers.clip_based import ClipModelConfig, ClipBasedScorer


class AestheticConfig(ScorerConfig):
    clip: ClipModelConfig = Field(
        default_factory=lambda: ClipModelConfig(model="ViT-L-14", pretrained="openai"),
        description="CLIP the head was trained on (ViT-L/14 OpenAI for the LAION MLP).",
    )
    head: str = Field(
        "sac+logos+ava1-l14-linearMSE.pth",
        description="Head checkpoint: a path, or a published head's file name looked up in "
        "$VIDQA_MODELS_DIR/laion-aesthetic/.",
    )
    sampling: SamplingSpec = Field(
        default_factory=lambda: SamplingSpec(method="fractions", fractions=(0.1, 0.5, 0.9)),
        description="Frames scored and averaged (load_num=3: 10%, 50%, 90% of the clip).",
    )


class AestheticScorer(ClipBasedScorer):
    """``aesthetic`` = mean over frames of ``head(e / ||e||)``; about 1-10 for the MLP
    (5.5 fair, 6.5 high). Per-frame scores are in the details."""

    name: ClassVar[str] = "aesthetic"
    title: ClassVar[str] = "Aesthetic"
    summary: ClassVar[str] = "LAION aesthetic score (CLIP ViT-L/14 + MLP head)."
    # 2: the metric is named "aesthetic" (was "aesthetic_score"), as the wide views' column.
    version: ClassVar[str] = "2"
    config_model: ClassVar[type[ScorerConfig]] = AestheticConfig
    metrics: ClassVar[tuple[str, ...]] = ("aesthetic",)

    def weights(self) -> dict[str, Weights]:
        return {**super().weights(), "head": AestheticHeadWeights(self.config.head)}

    @property
    def head(self) -> AestheticHead:
        return self.models["head"]

    def model_identity(self) -> dict[str, Any]:
        identity = super().model_identity()
        # A head on the wrong CLIP fails when the scorer is named, before any video is read.
        head_dim = self.declared_weights["head"].embed_dim()
        clip_dim = self.declared_weights["clip"].embed_dim()
        if head_dim != clip_dim:
            raise ScorerError(
                f"aesthetic head {self.config.head} takes {head_dim}-d embeddings but CLIP "
                f"{self.config.clip.model} gives {clip_dim}-d; use the CLIP the head was trained on"
            )
        return identity

    def score(self, items: list[ScoreItem]) -> list[dict[str, Metric] | Exception]:
        embeddings = self.encode_frames([item.frames for item in items])
        per_frame = aesthetic_scores(self.head, torch.cat(embeddings)).split([e.shape[0] for e in embeddings])
        return [
            {"aesthetic": Metric.of(float(s.mean()), {"frame_scores": [float(x) for x in s]})}
            for s in per_frame
        ]
