"""Pydantic parameters of the set-level metric flows (rendered as forms in the Prefect UI)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, Field, field_validator, model_validator

from vidqa.metrics.distribution import SUPPORTED_METRICS, parse_metric_name
from vidqa.sets.compute import DEFAULT_HEIGHT, DEFAULT_WIDTH


class SamplingParams(BaseModel):
    metrics: list[str] = Field(
        ["fvd2048_16f"], title="Metrics", description=f"Any of: {', '.join(SUPPORTED_METRICS)}.", min_length=1,
    )
    height: int = Field(DEFAULT_HEIGHT, ge=8, title="Height", description="Frames are resized to this height first.")
    width: int = Field(DEFAULT_WIDTH, ge=8, title="Width", description="Frames are resized to this width first.")
    seed: int = Field(0, ge=0, title="Seed", description="Run r samples clips, frames and KID subsets with seed + r.")
    num_runs: int = Field(1, ge=1, le=100, title="Runs", description="Runs to average (mean and std are stored).")
    detector_path: Optional[str] = Field(
        None, title="Detector path",
        description="A detector file or a folder holding the detector files (default: $VIDQA_DETECTORS_DIR, "
        "$VIDQA_MODELS_DIR/detectors, <VIDQA_HOME>/detectors).",
    )
    refresh: bool = Field(False, title="Recompute", description="Extract features again even when stored.")
    aws_credentials_block: Optional[str] = Field(
        None, title="AWS credentials block", description="Prefect AwsCredentials block for s3:// videos.",
    )

    @field_validator("metrics")
    @classmethod
    def _known(cls, metrics: list[str]) -> list[str]:
        for m in metrics:
            parse_metric_name(m)
        return list(dict.fromkeys(metrics))

    def options(self) -> dict:
        return self.model_dump(include={"height", "width", "seed", "num_runs", "detector_path", "refresh"})


class ReferenceStatsParams(SamplingParams):
    """Build reference (real-video) statistics once, under a name."""

    name: str = Field(..., min_length=1, title="Reference name")
    source: str = Field(..., title="Source", description="Folder, s3:// prefix or .jsonl/.csv manifest of real videos.")
    video_key: str = Field("video_path", title="Manifest video column")


class DistributionMetricsParams(SamplingParams):
    """Compute set-level metrics of a candidate set against a reference."""

    reference: Optional[str] = Field(
        None, title="Reference", description="A name given to reference build (or a source). IS/ISV need none.",
    )
    candidate: Optional[str] = Field(
        None, title="Candidate source", description="Folder, s3:// prefix or manifest of the videos to evaluate.",
    )
    where: Optional[str] = Field(
        None, title="Candidate SQL selection",
        description="Instead of a source: a condition over the wide view, e.g. aesthetic > 5.",
    )
    level: Literal["clip", "video"] = Field("clip", title="Selection level")
    video_key: str = Field("video_path", title="Manifest video column")
    candidate_offset: Literal["start", "random"] = Field(
        "start", title="Candidate clip offset",
        description="start: first frames (StyleGAN-V, generated videos); random: random start like the reference.",
    )
    bootstrap: int = Field(0, ge=0, le=10000, title="Bootstrap replicates", description="0: no confidence interval.")
    is_split_order: Literal["reference", "in_order", "shuffled"] = Field(
        "reference", title="IS split order",
        description="reference: as each metric's reference code (is50k: contiguous splits in extracted order, "
        "StyleGAN2-ADA; isv2048_ucf: RandomState(42) shuffle first, StyleGAN-V/data-juicer); in_order or shuffled "
        "force one rule (rows are grouped by video, so the rule changes the value).",
    )
    alpha: float = Field(0.05, gt=0, lt=1, title="CI alpha", description="0.05 gives a 95% interval.")

    @model_validator(mode="after")
    def _one_candidate(self) -> "DistributionMetricsParams":
        if (self.candidate is None) == (self.where is None):
            raise ValueError("give the candidate set as a source or as a SQL selection (where), not both")
        return self

    def candidate_set(self) -> dict:
        return {"source": self.candidate, "where": self.where, "level": self.level, "video_key": self.video_key}

    def options(self) -> dict:
        return {**super().options(), "candidate_offset": self.candidate_offset, "bootstrap": self.bootstrap,
                "alpha": self.alpha, "is_split_order": self.is_split_order}
