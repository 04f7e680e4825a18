"""One shard of a fanned-out run as its own flow run: what `score-videos` submits onto the
work pool (`run_deployment`) when fan-out is on, so any worker on any machine can take it.

The shard's per-video outcomes go to the run_shards table, where the parent run reads them:
results travel through the database every worker already shares, not through result storage.
"""

from __future__ import annotations

from typing import Any, Optional

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from flows.runners import gpu_request, task_runner
from tasks.scoring import GPU_TAG, result_storage, score_shard
from tasks.shards import record_completed
from vidqa.scorers import SCORERS


class ScoreShardParams(BaseModel):
    """A shard of a scoring run: its videos as listed by the parent, and the parent's prepared
    scorers (configuration and run-level context), so every shard scores alike."""

    run_id: str = Field(..., title="Run", description="The vidqa run (runs.id) this shard belongs to.")
    shard_index: int = Field(..., ge=0, title="Shard index")
    refs: list[dict[str, Any]] = Field(..., title="Videos", description="Listed video references.")
    scorers: list[dict[str, Any]] = Field(..., title="Prepared scorers")
    clips: dict[str, Any] = Field(default_factory=dict, title="Clips")
    aws_credentials_block: Optional[str] = Field(None, title="AWS credentials block")


def shard_gpus(specs: list[dict[str, Any]]) -> float:
    """The GPU share a shard needs: the largest of its scorers' declared shares."""
    return max((SCORERS[s["name"]].resources.gpus for s in specs), default=0.0)


def shard_task_for(specs: list[dict[str, Any]]):
    """The score-shard task as a flow submits it: tagged for the GPU concurrency limit when a
    scorer needs a GPU, with cached results in the configured result storage."""
    gpu = shard_gpus(specs) > 0
    return score_shard.with_options(tags=["vidqa-score", *([GPU_TAG] if gpu else [])],
                                    result_storage=result_storage())


def failed_outcomes(refs: list[dict[str, Any]], reason: str) -> list[dict[str, Any]]:
    """The outcomes of a shard that never finished: each video reported failed, not lost (the
    ledger lets the next run pick them up)."""
    return [{"uri": r["uri"], "status": "failed", "reason": reason, "scores_written": 0} for r in refs]


def shard_outcomes(future, shard_task, refs, specs, run_id, clips, aws_credentials_block) -> list[dict[str, Any]]:
    """Per-video outcomes of a submitted shard task, whatever its final state."""
    future.wait()  # as_completed can yield before the future's final state is read back
    state = future.state
    if not state.is_completed():  # a shard that crashed after its retries
        return failed_outcomes(refs, f"shard failed: {state.message or state.name}")
    outcomes = future.result()["outcomes"]
    if state.name != "Cached":
        return outcomes
    if any(o.get("transient") for o in outcomes):
        # An identical shard ran before but could not reach some videos: run it again (the
        # ledger skips what it finished) and replace the cache entry.
        retry = shard_task.with_options(refresh_cache=True)
        return retry(refs, specs, run_id, clips, aws_credentials_block)["outcomes"]
    # Nothing was done now: what scored then is skipped now; a final failure stays failed.
    cached = {"status": "skipped", "reason": "cached: an identical shard already ran"}
    return [{**o, **(cached if o["status"] != "failed" else {}), "scores_written": 0, "from_ledger": True}
            for o in outcomes]


@flow(name="score-shard", task_runner=task_runner())
def score_shard_flow(params: ScoreShardParams) -> dict[str, Any]:
    """Score one shard of a run and record its outcomes for the parent run."""
    shard_task = shard_task_for(params.scorers)
    with gpu_request(shard_gpus(params.scorers)):
        future = shard_task.submit(params.refs, params.scorers, params.run_id, params.clips,
                                   params.aws_credentials_block)
    outcomes = shard_outcomes(future, shard_task, params.refs, params.scorers, params.run_id, params.clips,
                              params.aws_credentials_block)
    record_completed(params.run_id, params.shard_index, outcomes, flow_run.id)
    counts = {s: sum(o["status"] == s for o in outcomes) for s in ("scored", "skipped", "failed")}
    get_run_logger().info("shard %d of run %s: %s", params.shard_index, params.run_id, counts)
    return {"shard_index": params.shard_index, "n_videos": len(outcomes), **counts}
