"""``vidqa reference`` and ``vidqa metrics``: set-level metrics from the command line (they run
the ``reference-stats`` and ``distribution-metrics`` flows in process)."""

from __future__ import annotations

from typing import Optional

import typer
from rich.markup import escape

from vidqa.cli.common import Format, emit, err_console, fail, open_database, quiet_prefect

reference_app = typer.Typer(help="Reference (real-video) statistics for set-level metrics.", no_args_is_help=True)
metrics_app = typer.Typer(help="Set-level metrics: FVD, KVD, ISV, PRV, FID, KID, IS, precision/recall.",
                          no_args_is_help=True)

METRIC_HELP = ("Metric name (repeat or comma-separate): fvd2048_16f, fvd2048_128f, fvd2048_128f_subsample8f, "
               "kvd2048_16f, isv2048_ucf, prv2048_3n_16f, fid50k, kid50k, is50k, pr50k_3n.")
VALUE_COLUMNS = ["id", "metric", "quantity", "value", "unit", "run_std", "split_std", "ci_low", "ci_high", "n_real", "n_fake",
                 "candidate_source", "reference_name"]


def _metrics(values: list[str]) -> list[str]:
    return [m.strip() for v in values for m in v.split(",") if m.strip()]


def _prepare(verbose: bool) -> None:
    quiet_prefect(verbose)
    open_database()


def _run_flow(flow, params):
    """Run ``flow(params)``; user errors (bad names, missing detectors, no usable videos) exit 2."""
    from vidqa.models.detectors import DetectorMissing
    from vidqa.storage import ManifestError

    try:
        return flow(params)
    except (ValueError, DetectorMissing, FileNotFoundError, PermissionError, ManifestError) as exc:
        fail(exc)


@reference_app.command("build")
def reference_build(
    name: str = typer.Argument(..., help="Name to refer to this reference by."),
    source: str = typer.Argument(..., help="Folder, glob, s3://bucket/prefix, or .jsonl/.csv manifest of real videos."),
    metric: list[str] = typer.Option(..., "--metric", "-m", help=METRIC_HELP),
    height: int = typer.Option(240, "--height", help="Resize sampled frames to this height (data-juicer: 240)."),
    width: int = typer.Option(320, "--width", help="Resize sampled frames to this width (data-juicer: 320)."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed (run r uses seed + r)."),
    num_runs: int = typer.Option(1, "--num-runs", help="Build statistics for this many runs (seeds)."),
    detector_path: Optional[str] = typer.Option(None, "--detector-path", help="Detector file or folder."),
    video_key: str = typer.Option("video_path", "--video-key", help="Manifests: the column naming each video."),
    refresh: bool = typer.Option(False, "--refresh", help="Extract again even if stored."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect logs."),
) -> None:
    """Extract reference features of SOURCE (or find them stored) and register them as NAME."""

    try:
        from flows.set_params import ReferenceStatsParams

        params = ReferenceStatsParams(name=name, source=source, metrics=_metrics(metric), height=height, width=width,
                                      seed=seed, num_runs=num_runs, detector_path=detector_path, video_key=video_key,
                                      refresh=refresh)
    except ValueError as exc:
        fail(exc)
    _prepare(verbose)
    from flows.reference_stats import reference_stats

    rows = _run_flow(reference_stats, params)
    emit(rows, Format.table, ["metric", "seed", "feature_set", "reused", "n_items", "n_short", "n_failed",
                               "features_uri"])


@reference_app.command("list")
def reference_list() -> None:
    """Registered references and how many feature sets their source has."""

    _prepare(False)
    from vidqa.db import get_engine
    from vidqa.sets.catalogue import list_references

    emit(list_references(get_engine()), Format.table, ["name", "source", "feature_sets", "updated_at"])


@metrics_app.command("compute")
def metrics_compute(
    source: Optional[str] = typer.Argument(
        None, help="Candidate videos: folder, glob, s3:// prefix or manifest (or use --where)."
    ),
    metric: list[str] = typer.Option(..., "--metric", "-m", help=METRIC_HELP),
    reference: Optional[str] = typer.Option(None, "--reference", "-r", help="Reference name (or source)."),
    where: Optional[str] = typer.Option(
        None, "--where", "-w", help="Candidate = scored clips/videos selected by this SQL condition, e.g. 'aesthetic > 5'."
    ),
    level: str = typer.Option("clip", "--level", help="--where over clip_scores_wide (clip) or video_scores_wide (video)."),
    num_runs: int = typer.Option(1, "--num-runs", help="Runs to average; mean and std are stored."),
    seed: int = typer.Option(0, "--seed"),
    height: int = typer.Option(240, "--height"),
    width: int = typer.Option(320, "--width"),
    candidate_offset: str = typer.Option(
        "start", "--candidate-offset", help="start (StyleGAN-V for generated videos) or random (as the reference)."
    ),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Bootstrap replicates for a confidence interval (0: none)."),
    alpha: float = typer.Option(0.05, "--alpha", help="CI level is 1 - alpha."),
    is_split_order: str = typer.Option(
        "reference", "--is-split-order", help="IS/ISV splits: reference (is50k in order as StyleGAN2-ADA; "
        "isv2048_ucf after StyleGAN-V's RandomState(42) shuffle), in_order or shuffled."
    ),
    detector_path: Optional[str] = typer.Option(None, "--detector-path", help="Detector file or folder."),
    video_key: str = typer.Option("video_path", "--video-key"),
    refresh: bool = typer.Option(False, "--refresh", help="Extract candidate features again even if stored."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json or csv."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect logs."),
) -> None:
    """Compute set-level metrics of the candidate set against a reference; values are stored in
    the metric_values table."""

    try:
        from flows.set_params import DistributionMetricsParams

        params = DistributionMetricsParams(
            metrics=_metrics(metric), reference=reference, candidate=source, where=where, level=level,
            num_runs=num_runs, seed=seed, height=height, width=width, candidate_offset=candidate_offset,
            bootstrap=bootstrap, alpha=alpha, detector_path=detector_path, video_key=video_key, refresh=refresh,
            is_split_order=is_split_order,
        )
        output = Format(fmt)
    except ValueError as exc:
        fail(exc)
    _prepare(verbose)
    from flows.distribution_metrics import distribution_metrics

    result = _run_flow(distribution_metrics, params)
    rows = result["values"]
    if rows:
        emit(rows, output, VALUE_COLUMNS)
    for warning in dict.fromkeys(r["warning"] for r in rows if r["warning"]):
        err_console.print(f"[yellow]warning:[/yellow] {escape(warning)}", soft_wrap=True)
    for error in result["errors"]:
        err_console.print(f"[red]error:[/red] {error['metric']}: {escape(error['error'])}", soft_wrap=True)
    if result["errors"]:
        raise typer.Exit(2)


@metrics_app.command("list")
def metrics_list(
    metric: Optional[str] = typer.Option(None, "--metric", "-m"),
    limit: int = typer.Option(50, "--limit"),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json or csv."),
) -> None:
    """Stored metric values, newest first."""

    _prepare(False)
    from vidqa.db import get_engine
    from vidqa.sets.catalogue import list_metric_values

    emit(list_metric_values(get_engine(), metric, limit), Format(fmt), VALUE_COLUMNS + ["detector", "created_at"])


@metrics_app.command("detectors")
def metrics_detectors(
    detector_path: Optional[str] = typer.Option(None, "--detector-path", help="Detector file or folder."),
) -> None:
    """Which detector file each metric needs, and whether it is found here."""
    from vidqa.models.detectors import detector_report

    rows = detector_report(detector_path)
    for row in rows:
        row["metrics"] = ", ".join(row["metrics"])
        row["found"] = row["found"] or "MISSING"
    emit(rows, Format.table, ["detector", "file", "metrics", "found", "url"])
    if any(r["found"] == "MISSING" for r in rows):
        raise typer.Exit(1)
