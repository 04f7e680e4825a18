"""Motion: optical-flow magnitude between consecutive sampled frames, as data-juicer's
``video_motion_score_filter`` computes it (Farnebäck, 2 frames per second); see
:mod:`vidqa.metrics.motion` for the formula."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from vidqa.metrics import motion as mm
from vidqa.scorers.base import CliFlags, Metric, ScoreItem, Scorer, ScorerConfig
from vidqa.video.sampling import SamplingSpec


def _two_per_second() -> SamplingSpec:
    return SamplingSpec(method="fps_step", fps=2.0)


class MotionConfig(ScorerConfig):
    sampling: SamplingSpec = Field(default_factory=_two_per_second, description="Frames whose consecutive pairs "
                                   "are compared (data-juicer: every round(fps/2)-th frame).")
    relative: bool = Field(False, description="Divide each pair's motion by the frame diagonal (data-juicer's "
                           "relative=True): a share of the picture instead of pixels.")
    still_below: float = Field(0.25, ge=0, description="A pair moving less than this is still (pixels, or a share "
                               "of the diagonal when relative; data-juicer's default minimum score 0.25).")

    @classmethod
    def flag_overrides(cls, flags: CliFlags) -> dict[str, Any]:
        # Motion is defined over pairs 0.5 s apart: --frames/--sampling (set for the other
        # scorers) would change what it measures. --max-size shrinks the frames (flow is
        # then in pixels of the smaller frames).
        out: dict[str, Any] = {}
        if flags.max_size is not None:
            out["sampling"] = {**_two_per_second().model_dump(), "max_size": flags.max_size}
        return out


class MotionScorer(Scorer):
    name = "motion"
    title: ClassVar[str] = "Motion"
    summary: ClassVar[str] = "Optical-flow magnitude between frames 0.5 s apart (data-juicer's motion score)."
    version = "1"
    config_model = MotionConfig
    metrics = ("motion_mean", "motion_max", "motion_still_share")

    def score(self, items: list[ScoreItem]) -> list[dict[str, Metric] | Exception]:
        return [self._score_one(item) for item in items]

    def _score_one(self, item: ScoreItem) -> dict[str, Metric]:
        frames = item.frames.array
        pairs = mm.farneback_pair_motion(frames, relative=self.config.relative)
        details = {"pairs": int(pairs.size), "unit": "share of the frame diagonal" if self.config.relative else
                   "pixels per sampled step", "frame_size": [int(frames.shape[2]), int(frames.shape[1])]}
        if pairs.size == 0:
            undefined = {**details, "undefined": "motion needs at least two frames"}
            return {m: Metric(None, undefined) for m in self.metrics}
        summary = mm.motion_summary(pairs, self.config.still_below)
        return {m: Metric.of(v, details) for m, v in summary.items()}
