"""VideoScore: five learned quality scores of a video and its prompt (TIGER-Lab's regression
checkpoints), stored as the metrics ``visual_quality``, ``temporal_consistency``,
``dynamic_degree``, ``text_to_video_alignment`` and ``factual_consistency``."""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar, Literal, Optional

from pydantic import Field, field_validator

from vidqa.errors import ScorerError, VideoError
from vidqa.models.videoscore import (
    ASPECTS, QWEN_FRAME_FACTOR, QWEN_MIN_FRAMES, QWEN_VIDEO_MAX_PIXELS, QWEN_VIDEO_MIN_PIXELS,
    QWEN_VIDEO_TOTAL_PIXELS, VideoScoreModel, VideoScoreWeights,
)
from vidqa.video.sampling import SamplingSpec
from vidqa.scorers.base import CliFlags, Metric, Resources, Runtime, ScoreItem, Scorer, ScorerConfig, Weights


class VideoScoreConfig(ScorerConfig):
    model: str = Field(
        "TIGER-Lab/VideoScore",
        description="TIGER-Lab/VideoScore (16 frames), TIGER-Lab/VideoScore-v1.1 (48 frames), "
        "TIGER-Lab/VideoScore-Qwen2-VL (8 frames per second), or a local checkpoint folder.",
    )
    max_frames: Optional[int] = Field(
        None, ge=1, le=4096,
        description="Frames given to the model: Idefics2 checkpoints take exactly this many (default 16, "
        "48 for v1.1); Qwen2-VL takes 8 per second of video, at most this many (default 768).",
    )
    text_key: str = Field("prompt", description="Manifest column with the video's generation prompt.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description="auto: bf16 on CUDA, fp32 on CPU.")
    min_pixels: int = Field(QWEN_VIDEO_MIN_PIXELS, ge=28 * 28, description="Qwen2-VL: fewest pixels per frame.")
    max_pixels: int = Field(QWEN_VIDEO_MAX_PIXELS, ge=28 * 28, description="Qwen2-VL: most pixels per frame.")
    total_pixels: int = Field(QWEN_VIDEO_TOTAL_PIXELS, ge=28 * 28,
                              description="Qwen2-VL: pixel budget of a whole video (frames shrink to fit).")

    runtime: Runtime = Field(default_factory=lambda: Runtime(batch_size=4),
                             description="Device, and videos per forward pass (halved when GPU memory runs out).")

    @classmethod
    def flag_overrides(cls, flags: CliFlags) -> dict[str, Any]:
        # VideoScore picks its frames as its checkpoint was trained; --frames caps them.
        out: dict[str, Any] = {}
        if flags.frames is not None:
            out["max_frames"] = flags.frames
        if flags.videoscore_model:
            out["model"] = flags.videoscore_model
        if flags.device:
            out["runtime"] = {"device": flags.device}
        return out

    @field_validator("sampling", mode="before")
    @classmethod
    def _no_sampling(cls, value: Any) -> Any:
        spec = SamplingSpec.model_validate(value or {})
        if spec != SamplingSpec():
            raise ValueError("VideoScore picks frames as its checkpoint was trained to; set max_frames instead")
        return spec


class VideoScoreScorer(Scorer):
    """Five regression outputs of the checkpoint's head, raw (labels were 1.0-4.0; not
    clamped), for the clip's frames and the row's prompt; a missing prompt fails this
    scorer only. Videos are batched per forward pass (``runtime.batch_size`` videos)."""

    name: ClassVar[str] = "videoscore"
    title: ClassVar[str] = "VideoScore"
    summary: ClassVar[str] = (
        "Five learned quality scores of a video and its prompt (TIGER-Lab VideoScore)."
    )
    version: ClassVar[str] = "1"
    config_model: ClassVar[type[ScorerConfig]] = VideoScoreConfig
    metrics: ClassVar[tuple[str, ...]] = ASPECTS
    resources: ClassVar[Resources] = Resources(gpus=1.0, batch_size=4)

    def weights(self) -> dict[str, Weights]:
        return {"videoscore": VideoScoreWeights(self.config.model, self.config.precision,
                                                self.config.runtime.resolved_device())}

    @property
    def model(self) -> VideoScoreModel:
        return self.models["videoscore"]

    @cached_property
    def sampling(self) -> SamplingSpec:
        """The checkpoint's frame rule (read from its config.json, not from the loaded model)."""
        spec = self.declared_weights["videoscore"].spec()
        n = self.config.max_frames or spec.num_frames
        if spec.fps is None:
            return SamplingSpec(method="linspace", n=n, rounding="floor")
        return SamplingSpec(method="linspace", n=n, fps=spec.fps, rounding="nearest",
                            multiple=QWEN_FRAME_FACTOR, min_frames=QWEN_MIN_FRAMES)

    @property
    def queue_size(self) -> int:
        return self.config.runtime.batch_size  # one forward pass's worth of videos

    def identity(self) -> dict[str, Any]:
        identity = super().identity()
        identity["config"].pop("sampling", None)
        if self.declared_weights["videoscore"].spec().family == "idefics2":  # the pixel budget is Qwen2-VL's only
            for key in ("min_pixels", "max_pixels", "total_pixels"):
                identity["config"].pop(key, None)
        return identity

    def model_identity(self) -> dict[str, Any]:
        return {**super().model_identity(), "frames": self.sampling.model_dump(mode="json")}

    def inputs(self, fields: dict[str, Any]) -> dict[str, Any]:
        text = fields.get(self.config.text_key)
        if not isinstance(text, str) or not text.strip():
            raise ScorerError(f"VideoScore needs the video's {self.config.text_key!r} text; this row has none")
        return {"prompt": text}

    def score(self, items: list[ScoreItem]) -> list[dict[str, Metric] | Exception]:
        results: list[dict[str, Metric] | Exception] = []
        ready, videos, prompts = [], [], []
        for item in items:
            try:
                prompt = self.inputs(item.fields)["prompt"]
                start, end = (item.clip.start_frame, item.clip.end_frame) if item.clip else (0, None)
                positions = self.sampling.positions(item.probe, start, end)
                videos.append(item.frames.at(positions))
                prompts.append(prompt)
                ready.append((len(results), positions))
                results.append({})
            except (ScorerError, VideoError, ValueError) as exc:
                results.append(exc if isinstance(exc, (ScorerError, VideoError)) else ScorerError(str(exc)))
        if not ready:
            return results
        scores = self.model.score(videos, prompts, batch_size=self.config.runtime.batch_size,
                                  min_pixels=self.config.min_pixels, max_pixels=self.config.max_pixels,
                                  total_pixels=self.config.total_pixels)
        for (slot, positions), row in zip(ready, scores.double().tolist()):
            details = {"frame_positions": [int(p) for p in positions]}
            results[slot] = {aspect: Metric.of(value, details) for aspect, value in zip(ASPECTS, row)}
        return results
