"""Motion: optical-flow magnitude between consecutive sampled frames, as data-juicer's
``video_motion_score_filter`` computes it (Farnebäck, 2 frames per second; see
:mod:`vidqa.metrics.motion` for the formula), or with RAFT flow as its
``video_motion_score_raft_filter`` does (:mod:`vidqa.models.raft`)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional

from pydantic import Field, model_validator

from vidqa.metrics import motion as mm
from vidqa.scorers.base import CliFlags, Metric, Resources, ScoreItem, Scorer, ScorerConfig, Weights, weights_file_field
from vidqa.video.sampling import SamplingSpec


# RAFT's all-pairs correlation takes (H*W/64)^2 floats per pair: 4 GB at 1080p, 21 MB at 512x288.
RAFT_MAX_SIZE = 512


def _two_per_second() -> SamplingSpec:
    return SamplingSpec(method="fps_step", fps=2.0)


class MotionConfig(ScorerConfig):
    sampling: SamplingSpec = Field(default_factory=_two_per_second, description="Frames whose consecutive pairs "
                                   "are compared (data-juicer: every round(fps/2)-th frame).")
    relative: bool = Field(False, description="Divide each pair's motion by the frame diagonal (data-juicer's "
                           "relative=True): a share of the picture instead of pixels.")
    still_below: float = Field(0.25, ge=0, description="A pair moving less than this is still (pixels, or a share "
                               "of the diagonal when relative; data-juicer's default minimum score 0.25).")
    flow: Literal["farneback", "raft_small", "raft_large"] = Field(
        "farneback", description="Optical flow: OpenCV's Farneback (CPU, no weights) or torchvision's RAFT "
        "(weights from a local file; GPU when there is one).")
    raft_weights: Optional[str] = weights_file_field("RAFT weights file (default: torchvision's published file "
                                                     "in $VIDQA_MODELS_DIR/torchvision or torch's hub cache).")

    @model_validator(mode="before")
    @classmethod
    def _raft_frames_fit_in_memory(cls, data: Any) -> Any:
        # RAFT's default frames are shrunk to RAFT_MAX_SIZE; the stored configuration says so.
        if isinstance(data, dict) and data.get("flow", "farneback") != "farneback" and "sampling" not in data:
            data = {**data, "sampling": {**_two_per_second().model_dump(), "max_size": RAFT_MAX_SIZE}}
        return data

    @classmethod
    def flag_overrides(cls, flags: CliFlags) -> dict[str, Any]:
        # Motion is defined over pairs 0.5 s apart: --frames/--sampling (set for the other
        # scorers) would change what it measures. --max-size shrinks the frames (flow is
        # then in pixels of the smaller frames).
        out: dict[str, Any] = {}
        if flags.max_size is not None:
            out["sampling"] = {**_two_per_second().model_dump(), "max_size": flags.max_size}
        if flags.device:
            out["runtime"] = {"device": flags.device}  # RAFT's; Farneback runs on the CPU
        return out


class MotionScorer(Scorer):
    name = "motion"
    title: ClassVar[str] = "Motion"
    summary: ClassVar[str] = "Optical-flow magnitude between frames 0.5 s apart (data-juicer's motion score)."
    version = "1"
    config_model = MotionConfig
    metrics = ("motion_mean", "motion_max", "motion_still_share")

    @property
    def resources(self) -> Resources:  # type: ignore[override]
        # RAFT is a network: its shards take the GPU limit's slot, as the CLIP scorers' do.
        return Resources() if self.config.flow == "farneback" else Resources(gpus=0.25)

    def weights(self) -> dict[str, Weights]:
        if self.config.flow == "farneback":
            return {}
        from vidqa.models.raft import RaftWeights

        return {"raft": RaftWeights(self.config.flow, self.config.raft_weights, self.config.runtime.resolved_device())}

    def score(self, items: list[ScoreItem]) -> list[dict[str, Metric] | Exception]:
        return [self._score_one(item) for item in items]

    def _pair_motion(self, frames):
        if self.config.flow == "farneback":
            return mm.farneback_pair_motion(frames, relative=self.config.relative)
        pairs = self.models["raft"].pair_motion(frames, batch=self.config.runtime.batch_size)
        return mm.relative_to_diagonal(pairs, frames.shape[1:3]) if self.config.relative else pairs

    def _score_one(self, item: ScoreItem) -> dict[str, Metric]:
        frames = item.frames.array
        pairs = self._pair_motion(frames)
        details = {"flow": self.config.flow, "pairs": int(pairs.size), "unit": "share of the frame diagonal" if self.config.relative else
                   "pixels per sampled step", "frame_size": [int(frames.shape[2]), int(frames.shape[1])]}
        if pairs.size == 0:
            undefined = {**details, "undefined": "motion needs at least two frames"}
            return {m: Metric(None, undefined) for m in self.metrics}
        summary = mm.motion_summary(pairs, self.config.still_below)
        return {m: Metric.of(v, details) for m, v in summary.items()}
