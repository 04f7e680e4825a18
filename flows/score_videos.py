"""The main flow: list -> probe -> sample frames -> score -> persist, in shards of videos."""

from __future__ import annotations

import time
from typing import Any, Literal, Optional

from prefect import flow, get_run_logger, unmapped
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from flows.fanout import FanOutParams, fan_out
from flows.runners import gpu_request, task_runner
from flows.score_shard import shard_gpus, shard_outcomes, shard_task_for
from tasks.reporting import publish_report
from tasks.scoring import close_run, list_videos, open_run, prepare_scorers
from vidqa.clips import ClipSpec
from vidqa.scorers import (
    SCORERS, AestheticConfig, EMScoreConfig, TechnicalConfig, TextVideoConfig, VideoAudioConfig, VideoScoreConfig,
    release_resident_scorers,
)
from vidqa.summary import RunSummary

ScorerName = Literal["technical", "emscore", "text_video", "video_audio", "aesthetic", "videoscore"]


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
    videoscore: VideoScoreConfig = Field(
        default_factory=VideoScoreConfig, title="VideoScore",
        description="Five learned quality scores of a video and its prompt (TIGER-Lab VideoScore).",
    )
    shard_size: int = Field(16, ge=1, le=10_000, title="Shard size",
                            description="Videos per shard (a task, or a flow run when fanned out).")
    fan_out: FanOutParams = Field(
        default_factory=FanOutParams, title="Fan-out",
        description="Spread the shards over the work pool's workers as flow runs of the score-shard deployment.",
    )

    def scorer_specs(self) -> list[dict[str, Any]]:
        return [{"name": name, "config": getattr(self, name).model_dump(mode="json")} for name in self.scorers]

    def metric_names(self) -> list[str]:
        return [m for name in self.scorers for m in SCORERS[name].metrics]


def score_refs(params: ScoreVideosParams, refs: list[dict[str, Any]], run_id: str, started: float,
               key_prefix: str, specs: Optional[list[dict[str, Any]]] = None) -> dict[str, Any]:
    """Score listed videos in shards (the body shared by score-videos and ingest-new): load
    the models, run the shards (as tasks of this flow run, or fanned out as flow runs over
    the work pool), report progress as they finish, summarise, publish artifacts.
    ``specs`` are prepared scorers when the caller computed their context over more videos."""
    logger = get_run_logger()
    # Loads every model (a missing one fails the run here, before any video is read) and
    # computes run-level context over the whole source (EMScore's IDF corpus).
    specs = specs if specs is not None else prepare_scorers(params.scorer_specs(), refs)
    shards = [refs[i : i + params.shard_size] for i in range(0, len(refs), params.shard_size)]
    logger.info("%d videos in %d shards%s", len(refs), len(shards),
                f", fanned out to {params.fan_out.deployment}" if params.fan_out.enabled else "")
    clips = params.clips.model_dump(mode="json")
    progress = create_progress_artifact(0.0, key=f"{key_prefix}-progress",
                                        description=f"Shards of {params.source} finished")
    if not shards:  # nothing to do (an incremental run with nothing new) is a finished job
        update_progress_artifact(progress, 100.0)
    outcomes: list[dict[str, Any]] = []
    finished: set[int] = set()

    def shard_done(index: int, shard_result: list[dict[str, Any]]) -> None:
        outcomes.extend(shard_result)
        finished.add(index)
        update_progress_artifact(progress, 100.0 * len(finished) / len(shards))

    if params.fan_out.enabled:
        release_resident_scorers()  # the shards' processes load their own models
        fan_out(params.fan_out, shards, specs, run_id, clips, params.aws_credentials_block, shard_done)
    else:
        shard_task = shard_task_for(specs)
        with gpu_request(shard_gpus(specs)):
            futures = shard_task.map(shards, unmapped(specs), unmapped(run_id), unmapped(clips),
                                     unmapped(params.aws_credentials_block))
        shard_of = {f.task_run_id: (i, shard) for i, (f, shard) in enumerate(zip(futures, shards))}
        for future in as_completed(futures):
            i, shard = shard_of[future.task_run_id]
            shard_done(i, shard_outcomes(future, shard_task, shard, specs, run_id, clips,
                                         params.aws_credentials_block))

    summary = RunSummary.from_outcomes(
        run_id, params.source, outcomes, params.metric_names(), time.perf_counter() - started
    )
    close_run(summary.to_dict())
    publish_report(summary.to_dict(), [r["uri"] for r in refs], [s["config_hash"] for s in specs],
                   params.metric_names(), key_prefix)
    logger.info(
        "scored %d, skipped %d, failed %d, %d scores written",
        summary.n_scored, summary.n_skipped, summary.n_failed, summary.n_scores_written,
    )
    return summary.to_dict()


@flow(name="score-videos", task_runner=task_runner())
def score_videos(params: ScoreVideosParams) -> dict[str, Any]:
    """Score every video of a source (folder, S3 prefix, manifest) with the chosen scorers."""
    started = time.perf_counter()
    run_id = open_run(params.source, params.model_dump(mode="json"), flow_run.id, flow_run.flow_name or "score-videos")
    refs = list_videos(params.source, params.video_key, params.aws_credentials_block)
    return score_refs(params, refs, run_id, started, "vidqa-score")
