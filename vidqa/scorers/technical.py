"""Technical metrics that need no model weights: luminance, sharpness, temporal change."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from vidqa.metrics import technical as tm
from vidqa.scorers.base import Metric, ScoreItem, Scorer, ScorerConfig


class TechnicalConfig(ScorerConfig):
    dyn_step: int = Field(
        1, ge=1, description="Step over sampled frames for MSE-dyn and SSIM-dyn (VideoScore used 4 over all frames)."
    )


class TechnicalScorer(Scorer):
    name = "technical"
    title: ClassVar[str] = "Technical metrics"
    summary: ClassVar[str] = "Luminance, sharpness, temporal change."
    version = "1"
    config_model = TechnicalConfig
    metrics = (
        "luminance_mean",
        "luminance_min",
        "luminance_max",
        "sharpness",
        "mse_dyn",
        "ssim_dyn",
        "ssim_sim",
    )

    def score(self, items: list[ScoreItem]) -> list[dict[str, Metric] | Exception]:
        return [self._score_one(item) for item in items]

    def _score_one(self, item: ScoreItem) -> dict[str, Metric]:
        frames = item.frames.array
        out = {k: Metric.of(v) for k, v in tm.luminance_stats(frames).items()}
        out["sharpness"] = Metric.of(tm.sharpness(frames))
        step = self.config.dyn_step
        temporal = {
            "mse_dyn": lambda: tm.mse_dyn(frames, step),
            "ssim_sim": lambda: tm.ssim_sim(frames),
            "ssim_dyn": lambda: tm.ssim_dyn(frames, step),
        }
        if step == 1:
            # SSIM-dyn over every sampled frame is SSIM-sim: reuse it, do not filter the frames again.
            del temporal["ssim_dyn"]
        for metric, compute in temporal.items():
            try:
                out[metric] = Metric.of(compute())
            except ValueError as exc:  # too few frames, or frames smaller than the SSIM window
                out[metric] = Metric(None, {"undefined": str(exc)})
        out.setdefault("ssim_dyn", out["ssim_sim"])
        return out
