"""The main flow: list -> probe -> sample frames -> score -> persist, in shards of videos."""

from __future__ import annotations

import time
from typing import Any, Literal, Optional

from prefect import flow, get_run_logger, unmapped
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import BaseModel, Field

from tasks.reporting import publish_report
from tasks.scoring import GPU_TAG, close_run, list_videos, open_run, prepare_scorers, result_storage, score_shard
from vidqa.clips import ClipSpec
from vidqa.scorers import (
    SCORERS, AestheticConfig, EMScoreConfig, TechnicalConfig, TextVideoConfig, VideoAudioConfig, VideoScoreConfig,
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
    shard_size: int = Field(16, ge=1, le=10_000, title="Shard size", description="Videos per task.")

    def scorer_specs(self) -> list[dict[str, Any]]:
        return [{"name": name, "config": getattr(self, name).model_dump(mode="json")} for name in self.scorers]

    def metric_names(self) -> list[str]:
        return [m for name in self.scorers for m in SCORERS[name].metrics]


def score_refs(params: ScoreVideosParams, refs: list[dict[str, Any]], run_id: str, started: float,
               key_prefix: str, specs: Optional[list[dict[str, Any]]] = None) -> dict[str, Any]:
    """Score listed videos in shards (the body shared by score-videos and ingest-new): load
    the models, map the shards, report progress as they finish, summarise, publish artifacts.
    ``specs`` are prepared scorers when the caller computed their context over more videos."""
    logger = get_run_logger()
    # Loads every model (a missing one fails the run here, before any video is read) and
    # computes run-level context over the whole source (EMScore's IDF corpus).
    specs = specs if specs is not None else prepare_scorers(params.scorer_specs(), refs)
    shards = [refs[i : i + params.shard_size] for i in range(0, len(refs), params.shard_size)]
    logger.info("%d videos in %d shards", len(refs), len(shards))
    gpu = any(SCORERS[name].resources.gpus > 0 for name in params.scorers)
    shard_task = score_shard.with_options(
        tags=["vidqa-score", *([GPU_TAG] if gpu else [])], result_storage=result_storage()
    )
    clips = params.clips.model_dump(mode="json")
    futures = shard_task.map(shards, unmapped(specs), unmapped(run_id), unmapped(clips),
                             unmapped(params.aws_credentials_block))
    progress = create_progress_artifact(0.0, key=f"{key_prefix}-progress",
                                        description=f"Shards of {params.source} finished")
    if not shards:  # nothing to do (an incremental run with nothing new) is a finished job
        update_progress_artifact(progress, 100.0)
    shard_of = {f.task_run_id: shard for f, shard in zip(futures, shards)}
    outcomes: list[dict[str, Any]] = []
    for done, future in enumerate(as_completed(futures), start=1):
        shard = shard_of[future.task_run_id]
        outcomes.extend(_shard_outcomes(future, shard, shard_task, specs, run_id, clips, params))
        update_progress_artifact(progress, 100.0 * done / len(shards))

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


def _shard_outcomes(future, shard, shard_task, specs, run_id, clips, params) -> list[dict[str, Any]]:
    future.wait()  # as_completed can yield before the future's final state is read back
    state = future.state
    if not state.is_completed():
        # A shard that crashed after its retries: its videos are reported, not lost; the
        # ledger lets the next run pick them up.
        reason = f"shard failed: {state.message or state.name}"
        return [{"uri": r["uri"], "status": "failed", "reason": reason, "scores_written": 0} for r in shard]
    outcomes = future.result()["outcomes"]
    if state.name != "Cached":
        return outcomes
    if any(o.get("transient") for o in outcomes):
        # An identical shard ran before but could not reach some videos: run it again (the
        # ledger skips what it finished) and replace the cache entry.
        retry = shard_task.with_options(refresh_cache=True)
        return retry(shard, specs, run_id, clips, params.aws_credentials_block)["outcomes"]
    # Nothing was done now: what scored then is skipped now; a final failure stays failed.
    cached = {"status": "skipped", "reason": "cached: an identical shard already ran"}
    return [{**o, **(cached if o["status"] != "failed" else {}), "scores_written": 0, "from_ledger": True}
            for o in outcomes]


@flow(name="score-videos", task_runner=ThreadPoolTaskRunner(max_workers=2))
def score_videos(params: ScoreVideosParams) -> dict[str, Any]:
    """Score every video of a source (folder, S3 prefix, manifest) with the chosen scorers."""
    started = time.perf_counter()
    run_id = open_run(params.source, params.model_dump(mode="json"), flow_run.id, flow_run.flow_name or "score-videos")
    refs = list_videos(params.source, params.video_key, params.aws_credentials_block)
    return score_refs(params, refs, run_id, started, "vidqa-score")
