"""CLIP text-video similarity: a clip's frames against a text field (prompt or caption)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional

import torch
from pydantic import Field

from vidqa.errors import ScorerError
from vidqa.video.sampling import SamplingSpec
from vidqa.scorers.base import Metric, ScoreItem, ScorerConfig
from vidqa.scorers.clip_based import ClipModelConfig, ClipBasedScorer, ClipBasedConfig

Reduce = Literal["avg", "max", "min"]
Flip = Literal["none", "horizontal", "vertical", "both"]


def reduce_similarities(sims: torch.Tensor) -> dict[str, float]:
    s = sims.double()
    return {"avg": float(s.mean()), "max": float(s.max()), "min": float(s.min())}


class TextVideoConfig(ClipBasedConfig):
    clip: ClipModelConfig = Field(default_factory=ClipModelConfig, description="CLIP model.")
    sampling: SamplingSpec = Field(default_factory=lambda: SamplingSpec(method="uniform", n=8),
                                   description="Frames compared with the text.")
    text_key: str = Field("prompt", description="Manifest column with the text (e.g. prompt, candidate).")
    reduce: Reduce = Field("avg", description="How frame similarities become the clip's score.")
    flip: Flip = Field("none", description="Add flipped copies of the frames before reducing.")


class TextVideoScorer(ClipBasedScorer):
    """``text_video_sim`` = reduce over frames of ``cos(clip_image(f), clip_text(text))``,
    raw cosine (no 100x scale, no clamp at 0); min/avg/max are in the details."""

    name: ClassVar[str] = "text_video"
    title: ClassVar[str] = "Text-video similarity"
    summary: ClassVar[str] = "CLIP similarity of frames and a text."
    version: ClassVar[str] = "1"
    config_model: ClassVar[type[ScorerConfig]] = TextVideoConfig
    metrics: ClassVar[tuple[str, ...]] = ("text_video_sim",)

    def from_embeddings_refusal(self) -> Optional[str]:
        if self.config.flip != "none":
            return f"text_video with flip={self.config.flip} needs the flipped frames, which are not stored"
        return None

    def inputs(self, fields: dict[str, Any]) -> dict[str, Any]:
        text = fields.get(self.config.text_key)
        if not isinstance(text, str) or not text.strip():
            raise ScorerError(f"no {self.config.text_key!r} text to compare with the frames")
        return {"text": text}

    def score(self, items: list[ScoreItem]) -> list[dict[str, Metric] | Exception]:
        texts: list[str | Exception] = []
        for item in items:
            try:
                texts.append(self.inputs(item.fields)["text"])
            except ScorerError as exc:
                texts.append(exc)
        ok = [n for n, t in enumerate(texts) if not isinstance(t, Exception)]
        results: list[dict[str, Metric] | Exception] = list(texts)  # failures stay as they are
        if not ok:
            return results
        sims_per_clip = self.text_similarities([items[n].frames for n in ok], [texts[n] for n in ok],
                                               self.config.flip)
        for n, sims in zip(ok, sims_per_clip):
            reduced = reduce_similarities(sims)
            results[n] = {"text_video_sim": Metric.of(reduced[self.config.reduce], {
                **{f"sim_{k}": v for k, v in reduced.items()},
                "frame_sims": [float(x) for x in sims],  # flipped copies follow the originals
                "flip": self.config.flip,
            })}
        return results
