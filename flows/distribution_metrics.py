"""Set-level metrics (FVD, KVD, ISV, PRV, FID, KID, IS, PR) of a candidate set, stored in
``metric_values``."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.artifacts import create_table_artifact

from flows.set_params import DistributionMetricsParams
from tasks.set_metrics import compute_set_metric

ARTIFACT_COLUMNS = ("id", "metric", "quantity", "value", "run_std", "split_std", "ci_low", "ci_high",
                    "n_real", "n_fake", "warning")


@flow(name="distribution-metrics")
def distribution_metrics(params: DistributionMetricsParams) -> dict[str, Any]:
    """Compute every metric of ``params`` for the candidate set against the reference. A metric
    that cannot be computed (too few samples, a missing detector) fails its own task and is
    reported in ``errors`` and the artifact; the other metrics still run."""
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    for metric in params.metrics:
        state = compute_set_metric(metric, params.candidate_set(), params.reference, params.options(),
                                   params.aws_credentials_block, return_state=True)
        if state.is_completed():
            rows.extend(state.result())
        else:
            exc = state.result(raise_on_failure=False)
            errors.append({"metric": metric, "error": f"{type(exc).__name__}: {exc}"})
    table = [{k: r.get(k) for k in ARTIFACT_COLUMNS} for r in rows]
    table += [{"metric": e["metric"], "warning": e["error"]} for e in errors]
    create_table_artifact(
        table=table or [{"metric": "(none)"}], key="vidqa-distribution-metrics",
        description=f"Candidate {params.candidate or params.where!r} against reference {params.reference!r}",
    )
    return {"values": rows, "errors": errors}
