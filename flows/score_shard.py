"""One shard of a run as its own flow run: what `score-videos` submits onto the work pool
(`run_deployment`) when fan-out is on, so any worker on any machine can take it. The same
:class:`ShardJob` is what a run scores as a task per shard when it does not fan out.

The shard's per-video outcomes go to the run_shards table, where the parent run reads them:
results travel through the database every worker already shares, not through result storage.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.runners import gpu_request, task_runner
from tasks.scoring import GPU_TAG, find_unfinished, result_storage, score_shard_videos
from tasks.shards import record_completed
from vidqa.errors import DatabaseLost
from vidqa.scorers import build_scorer
from vidqa.scoring.job import ScorerSpec, ShardJob
from vidqa.scoring.outcomes import ShardResult, VideoOutcome, failed_outcomes


def shard_gpus(specs: list[ScorerSpec]) -> float:
    """The GPU share a shard needs: the largest of its scorers' declared shares (a scorer's
    share can depend on its configuration: motion with RAFT flow wants one, with Farneback not)."""
    return max((build_scorer(s.name, s.config).resources.gpus for s in specs), default=0.0)


def shard_task_for(specs: list[ScorerSpec]):
    """The shard task as a flow submits it: tagged for the GPU concurrency limit when a
    scorer needs a GPU, with cached results in the configured result storage."""
    gpu = shard_gpus(specs) > 0
    return score_shard_videos.with_options(tags=["vidqa-score", *([GPU_TAG] if gpu else [])],
                                           result_storage=result_storage())


def shard_outcomes(future, shard_task, job: ShardJob) -> list[VideoOutcome]:
    """Per-video outcomes of a submitted shard task, whatever its final state."""
    future.wait()  # as_completed can yield before the future's final state is read back
    state = future.state
    if not state.is_completed():  # a shard that crashed after its retries
        lost = state.result(raise_on_failure=False)
        if isinstance(lost, DatabaseLost):
            raise lost  # no later shard can record anything: the run stops now
        return failed_outcomes([r.uri for r in job.refs], f"shard failed: {state.message or state.name}")
    outcomes = ShardResult.model_validate(future.result()).outcomes
    if state.name != "Cached":
        return outcomes
    if find_unfinished(job.refs, job.scorers, job.clips, job.aws_credentials_block):
        # The ledger, not the cache, is the truth: an identical shard ran before, but the
        # database lacks some of its work now (rows deleted, another database, a video it
        # could not reach then). Run it again (the ledger skips what is there) and replace
        # the cache entry.
        return ShardResult.model_validate(shard_task.with_options(refresh_cache=True)(job)).outcomes
    # Nothing was done now: what scored then is skipped now; a final failure stays failed.
    cached = {"status": "skipped", "reason": "cached: an identical shard already ran"}
    return [o.model_copy(update={**(cached if o.status != "failed" else {}), "scores_written": 0, "from_ledger": True})
            for o in outcomes]


@flow(name="score-shard", task_runner=task_runner())
def score_shard_flow(job: ShardJob) -> dict[str, Any]:
    """Score one shard of a run and record its outcomes for the parent run."""
    shard_task = shard_task_for(job.scorers)
    with gpu_request(shard_gpus(job.scorers)):
        future = shard_task.submit(job)
    outcomes = shard_outcomes(future, shard_task, job)
    record_completed(job.run_id, job.shard_index, outcomes, flow_run.id)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("scored", "skipped", "failed")}
    get_run_logger().info("shard %d of run %s: %s", job.shard_index, job.run_id, counts)
    return {"shard_index": job.shard_index, "n_videos": len(outcomes), **counts}
