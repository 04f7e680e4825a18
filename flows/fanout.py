"""Fan a run's shards out as flow runs of the `score-shard` deployment, so the workers of a
work pool (on any number of machines) share the job; Prefect queues, places and tracks them.

The parent keeps at most ``max_in_flight`` shard runs submitted, resubmits a shard whose run
failed or crashed (a killed worker's run is marked Crashed by the heartbeat automation in
deployments/automations.yaml), and reports the videos of a shard that never completed as
failed. Outcomes come back through the run_shards table.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from typing import Any, Callable

from prefect import get_client, get_run_logger
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.runtime import flow_run
from pydantic import BaseModel, Field

from tasks.shards import read_outcomes, record_failed, record_submitted
from vidqa.scoring.job import ShardJob
from vidqa.scoring.outcomes import VideoOutcome, failed_outcomes


class FanOutParams(BaseModel):
    """Split the job over a work pool: each shard becomes a flow run of a deployment."""

    enabled: bool = Field(
        False, title="Fan out",
        description="Submit each shard as its own flow run (any worker of the pool takes it) instead of "
        "scoring every shard inside this flow run.",
    )
    deployment: str = Field(
        "score-shard/score-shard", title="Shard deployment", description="'flow name/deployment name' of the shard flow."
    )
    max_in_flight: int = Field(8, ge=1, le=10_000, title="Max shards in flight",
                               description="Shard runs submitted and not yet finished, at most.")
    shard_retries: int = Field(2, ge=0, le=20, title="Shard retries",
                               description="Resubmissions of a shard whose run failed or crashed.")
    poll_seconds: float = Field(2.0, gt=0, le=300, title="Poll interval (s)")
    job_variables: dict[str, Any] = Field(
        default_factory=dict, title="Job variables",
        description="Work-pool job variables of each shard run (env, image, resource requests, ...).",
    )


def fan_out(cfg: FanOutParams, jobs: list[ShardJob], on_shard_done: Callable[[int, list[VideoOutcome]], None]) -> None:
    """Run every shard job as a flow run of ``cfg.deployment``; call ``on_shard_done(index,
    outcomes)`` as each one ends (completed, or failed after its resubmissions)."""
    logger = get_run_logger()
    pending = deque(range(len(jobs)))
    attempts = [0] * len(jobs)
    run_id = jobs[0].run_id if jobs else ""
    in_flight: dict[uuid.UUID, int] = {}
    parent_name = flow_run.name or "score-videos"
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(cfg.deployment)
        except ObjectNotFound:
            raise ValueError(
                f"fan-out needs the deployment {cfg.deployment!r} on this Prefect server ({client.api_url}); "
                "deploy it from the repository root: prefect deploy --prefect-file deployments/prefect.yaml "
                "--name score-shard"
            ) from None
        while pending or in_flight:
            while pending and len(in_flight) < cfg.max_in_flight:
                i = pending.popleft()
                attempts[i] += 1
                child = run_deployment(
                    cfg.deployment, parameters={"job": jobs[i].model_dump(mode="json")}, timeout=0,
                    flow_run_name=f"{parent_name}-shard-{i:04d}-try-{attempts[i]}",
                    tags=["vidqa", "vidqa-shard", f"vidqa-run-{run_id}"],
                    # a retried parent gets the same child runs back rather than duplicates
                    idempotency_key=f"vidqa-run-{run_id}-shard-{i}-try-{attempts[i]}",
                    job_variables=cfg.job_variables or None,
                )
                record_submitted(run_id, i, len(jobs[i].refs), str(child.id))
                in_flight[child.id] = i
            time.sleep(cfg.poll_seconds)
            for child in client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(in_flight)))):
                if child.state is None or not child.state.is_final():
                    continue
                i = in_flight.pop(child.id)
                # Recorded outcomes count whatever the run's final state: a run can crash after
                # writing them (or an earlier attempt, taken for dead, can finish after all).
                outcomes = read_outcomes(run_id, i)
                if outcomes is not None:
                    on_shard_done(i, outcomes)
                    continue
                if child.state.is_completed():
                    reason = "its run completed without recording outcomes"
                else:
                    reason = f"its run {child.name} ended {child.state.name}: {child.state.message or ''}".strip()
                if attempts[i] <= cfg.shard_retries and not child.state.is_cancelled():
                    logger.warning("shard %d: %s; resubmitting (attempt %d of %d)", i, reason, attempts[i] + 1,
                                   cfg.shard_retries + 1)
                    pending.append(i)
                else:
                    logger.error("shard %d failed after %d attempts: %s", i, attempts[i], reason)
                    record_failed(run_id, i, reason)
                    on_shard_done(i, failed_outcomes([r.uri for r in jobs[i].refs], f"shard failed: {reason}"))
