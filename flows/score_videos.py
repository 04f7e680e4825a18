"""The main flow: list -> probe -> sample frames -> score -> persist, in shards of videos."""

from __future__ import annotations

import time
from typing import Any, Literal, Optional

from prefect import flow, get_run_logger, unmapped
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from tasks.scoring import close_run, list_videos, open_run, prepare_scorers, score_shard
from vidqa.clips import ClipSpec
from vidqa.scorers import SCORERS, AestheticConfig, EMScoreConfig, TechnicalConfig, TextVideoConfig, VideoAudioConfig
from vidqa.summary import RunSummary

ScorerName = Literal["technical", "emscore", "text_video", "video_audio", "aesthetic"]


class ScoreVideosParams(BaseModel):
    """Parameters of a scoring run (rendered as a form in the Prefect UI)."""

    source: str = Field(
        ..., title="Source",
        description="Folder, glob or video file; s3://bucket/prefix (or an s3:// glob); or a .jsonl/.csv manifest.",
    )
    video_key: str = Field("video_path", title="Manifest video column", description="Manifests: the column naming each video.")
    aws_credentials_block: Optional[str] = Field(
        None, title="AWS credentials block",
        description="Name of a Prefect AwsCredentials block for s3:// sources (default: VIDQA_S3_* settings, then the AWS chain).",
    )
    clips: ClipSpec = Field(
        default_factory=ClipSpec, title="Clips",
        description="Score whole videos, or split them into scenes or fixed windows and score each clip.",
    )
    scorers: list[ScorerName] = Field(["technical"], title="Scorers", description="Scorers to run.")
    technical: TechnicalConfig = Field(
        default_factory=TechnicalConfig, title="Technical metrics", description="Luminance, sharpness, temporal change."
    )
    emscore: EMScoreConfig = Field(
        default_factory=EMScoreConfig, title="EMScore", description="Caption vs video frames and reference captions."
    )
    text_video: TextVideoConfig = Field(
        default_factory=TextVideoConfig, title="Text-video similarity", description="CLIP similarity of frames and a text."
    )
    video_audio: VideoAudioConfig = Field(
        default_factory=VideoAudioConfig, title="Video-audio similarity",
        description="CLIP similarity of frames and the audio's text (provided description, or speech recognition).",
    )
    aesthetic: AestheticConfig = Field(
        default_factory=AestheticConfig, title="Aesthetic", description="LAION aesthetic score (CLIP ViT-L/14 + MLP head)."
    )
    shard_size: int = Field(16, ge=1, le=10_000, title="Shard size", description="Videos per task.")

    def scorer_specs(self) -> list[dict[str, Any]]:
        return [{"name": name, "config": getattr(self, name).model_dump(mode="json")} for name in self.scorers]

    def metric_names(self) -> list[str]:
        return [m for name in self.scorers for m in SCORERS[name].metrics]


@flow(name="score-videos", task_runner=ThreadPoolTaskRunner(max_workers=2))
def score_videos(params: ScoreVideosParams) -> dict[str, Any]:
    started = time.perf_counter()
    logger = get_run_logger()
    run_id = open_run(params.source, params.model_dump(mode="json"), flow_run.id, flow_run.flow_name or "score-videos")
    refs = list_videos(params.source, params.video_key, params.aws_credentials_block)
    # Loads every model (a missing one fails the run here, before any video is read) and
    # computes run-level context over the whole source (EMScore's IDF corpus).
    specs = prepare_scorers(params.scorer_specs(), refs)
    shards = [refs[i : i + params.shard_size] for i in range(0, len(refs), params.shard_size)]
    logger.info("%d videos in %d shards", len(refs), len(shards))
    futures = score_shard.map(
        shards,
        unmapped(specs),
        unmapped(run_id),
        unmapped(params.clips.model_dump(mode="json")),
        unmapped(params.aws_credentials_block),
    )

    outcomes: list[dict[str, Any]] = []
    for shard, future in zip(shards, futures):
        future.wait()
        if future.state.is_completed():
            outcomes.extend(future.result()["outcomes"])
        else:
            # A shard that crashed after its retries: its videos are reported, not lost;
            # the ledger lets the next run pick them up.
            reason = f"shard failed: {future.state.message or future.state.name}"
            outcomes.extend(
                {"uri": r["uri"], "status": "failed", "reason": reason, "scores_written": 0} for r in shard
            )

    summary = RunSummary.from_outcomes(
        run_id, params.source, outcomes, params.metric_names(), time.perf_counter() - started
    )
    close_run(summary.to_dict())
    logger.info(
        "scored %d, skipped %d, failed %d, %d scores written",
        summary.n_scored, summary.n_skipped, summary.n_failed, summary.n_scores_written,
    )
    return summary.to_dict()
