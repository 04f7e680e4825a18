"""The main flow: open a run -> list -> prepare scorers -> score shards -> close -> report."""

from __future__ import annotations

import time
from typing import Any, Literal, Optional

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed
from prefect.runtime import flow_run
from pydantic import BaseModel, Field, create_model, model_validator

from flows.fanout import FanOutParams, fan_out
from flows.hooks import RUN_HOOKS
from flows.runners import gpu_request, task_runner
from flows.score_shard import shard_gpus, shard_outcomes, shard_task_for
from tasks.reporting import publish_report
from tasks.scoring import close_run, list_videos, open_run, prepare_scorers
from vidqa.scorers import SCORER_NAMES, SCORERS, release_resident_scorers
from vidqa.scoring.job import ScorerSpec, ShardJob
from vidqa.scoring.outcomes import RunSummary, VideoOutcome
from vidqa.storage import VideoRef
from vidqa.video.clips import ClipSpec

ScorerName = Literal[SCORER_NAMES]  # type: ignore[valid-type]


class _RunParams(BaseModel):
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
    shard_size: int = Field(16, ge=1, le=10_000, title="Shard size",
                            description="Videos per shard (a task, or a flow run when fanned out).")
    fan_out: FanOutParams = Field(
        default_factory=FanOutParams, title="Fan-out",
        description="Spread the shards over the work pool's workers as flow runs of the score-shard deployment.",
    )
    from_embeddings: bool = Field(
        False, title="From stored embeddings",
        description="text_video only: score the texts against the frame embeddings an earlier run stored "
        "(VIDQA_STORE_FRAME_EMBEDDINGS=1, same CLIP and sampling), fetching and decoding no video.",
    )

    @model_validator(mode="after")
    def _from_embeddings_scorers(self) -> "_RunParams":
        if self.from_embeddings:
            refused = [why for name in self.scorers
                       if (why := SCORERS[name](getattr(self, name, None)).from_embeddings_refusal())]
            if refused:
                raise ValueError("from_embeddings scores text_video only: " + "; ".join(refused))
        return self

    def scorer_specs(self) -> list[ScorerSpec]:
        return [ScorerSpec(name=name, config=getattr(self, name).model_dump(mode="json")) for name in self.scorers]

    def metric_names(self) -> list[str]:
        return [m for name in self.scorers for m in SCORERS[name].metrics]


# One settings field per registered scorer, from the registry: a new scorer needs no edit here.
ScoreVideosParams = create_model(
    "ScoreVideosParams",
    __base__=_RunParams,
    __module__=__name__,
    __doc__="Parameters of a scoring run (rendered as a form in the Prefect UI).",
    **{name: (SCORERS[name].config_model, Field(default_factory=SCORERS[name].config_model,
                                                title=SCORERS[name].title, description=SCORERS[name].summary))
       for name in SCORER_NAMES},
)


def run_shards(params: _RunParams, refs: list[VideoRef], specs: list[ScorerSpec], run_id: str,
               key_prefix: str) -> list[VideoOutcome]:
    """Score listed videos in shards (as tasks of this flow run, or fanned out as flow runs
    over the work pool), reporting progress as they finish."""
    jobs = [ShardJob(run_id=run_id, shard_index=i // params.shard_size, refs=refs[i: i + params.shard_size],
                     scorers=specs, clips=params.clips, aws_credentials_block=params.aws_credentials_block,
                     from_embeddings=params.from_embeddings)
            for i in range(0, len(refs), params.shard_size)]
    get_run_logger().info("%d videos in %d shards%s", len(refs), len(jobs),
                          f", fanned out to {params.fan_out.deployment}" if params.fan_out.enabled else "")
    progress = create_progress_artifact(0.0, key=f"{key_prefix}-progress",
                                        description=f"Shards of {params.source} finished")
    if not jobs:  # nothing to do (an incremental run with nothing new) is a finished job
        update_progress_artifact(progress, 100.0)
    outcomes: list[VideoOutcome] = []
    finished: set[int] = set()

    def shard_done(index: int, shard_result: list[VideoOutcome]) -> None:
        outcomes.extend(shard_result)
        finished.add(index)
        update_progress_artifact(progress, 100.0 * len(finished) / len(jobs))

    if params.fan_out.enabled:
        release_resident_scorers()  # nothing of the shards' models belongs in this process
        fan_out(params.fan_out, jobs, shard_done)
        return outcomes
    shard_task = shard_task_for(specs)
    with gpu_request(shard_gpus(specs)):
        futures = shard_task.map(jobs)
    job_of = {f.task_run_id: job for f, job in zip(futures, jobs)}
    for future in as_completed(futures):
        job = job_of[future.task_run_id]
        shard_done(job.shard_index, shard_outcomes(future, shard_task, job))
    return outcomes


def finish_run(params: _RunParams, refs: list[VideoRef], specs: list[ScorerSpec], run_id: str,
               outcomes: list[VideoOutcome], started: float, key_prefix: str, **extra: Any) -> RunSummary:
    """Summarise, close the run, publish its artifacts."""
    summary = RunSummary.from_outcomes(run_id, params.source, outcomes, params.metric_names(),
                                       time.perf_counter() - started).model_copy(update=extra)
    summary = close_run(summary)  # its counts as the database holds them
    publish_report(summary, [r.uri for r in refs], [s.config_hash for s in specs], params.metric_names(), key_prefix)
    get_run_logger().info("scored %d, skipped %d, failed %d, %d scores written",
                          summary.n_scored, summary.n_skipped, summary.n_failed, summary.n_scores_written)
    return summary


@flow(name="score-videos", task_runner=task_runner(), **RUN_HOOKS)
def score_videos(params: ScoreVideosParams) -> RunSummary:
    """Score every video of a source (folder, S3 prefix, manifest) with the chosen scorers."""
    started = time.perf_counter()
    run_id = open_run(params.source, params.model_dump(mode="json"), flow_run.id, flow_run.flow_name or "score-videos")
    refs = list_videos(params.source, params.video_key, params.aws_credentials_block)
    # Names every scorer (a missing weight file fails the run here, before any video is read)
    # with run-level context over the whole source (EMScore's IDF corpus).
    specs = prepare_scorers(params.scorer_specs(), refs, params.clips)
    outcomes = run_shards(params, refs, specs, run_id, "vidqa-score")
    return finish_run(params, refs, specs, run_id, outcomes, started, "vidqa-score")
