"""Reference statistics and set-level metrics, end to end: name a video set, extract (or
reuse) its detector features, compute FVD/KVD/ISV/PRV/FID/KID/IS/PR, store the values.

* A **video set** (:class:`SetSource`) is a listing source (folder, glob, ``s3://`` prefix,
  manifest) or a SQL selection of already-scored clips or videos (``--where`` over
  ``clip_scores_wide`` / ``video_scores_wide``).
* **Feature sets** are cached by content: the key is the SHA-256 of the members' content ids
  and spans plus every setting that changes the features (detector file hash, output, clip
  length, subsample, offset rule, resize, sample count, seed, sampling-rule version). An
  edited video changes the key (recomputed); an unchanged set is never recomputed.
* **Runs**: run ``r`` of ``num_runs`` samples both sets with seed ``seed + r`` (new clip
  offsets and subsets; KID subsets too); the stored value is the mean over runs, with the std.
* Every stored value records what makes it comparable (detector and its hash, resize, frames,
  subsample, sample counts, covariance convention, unit) and a warning when fewer samples
  were available than the metric's name promises.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
from sqlalchemy.engine import Engine

from vidqa import __version__
from vidqa.sets import feature_store
from vidqa.db import sets as db
from vidqa.errors import SetMetricError, TransientSetError
from vidqa.metrics import distribution as dist
from vidqa.models.detectors import Detector, load_detector
from vidqa.sets.catalogue import reference_source, register_reference
from vidqa.sets.features import COVARIANCE_CONVENTION, RESIZE_METHOD, FeatureSpec, extract_features
from vidqa.sets.members import ResolvedSet, SetSource, resolve_set
from vidqa.sets.sampling import Offset
from vidqa.storage import Storage

log = logging.getLogger(__name__)

DEFAULT_HEIGHT, DEFAULT_WIDTH = 240, 320  # data-juicer's calc_metrics defaults
KID_NUM_SUBSETS, KID_MAX_SUBSET = 100, 1000  # StyleGAN2-ADA / StyleGAN-V
IS_NUM_SPLITS = 10
# IS/ISV splits, as each metric's reference code cuts them ("reference"): is50k into
# contiguous slices of the rows in their extracted order (StyleGAN2-ADA `compute_is`),
# isv2048_ucf after a RandomState(42) shuffle (StyleGAN-V `compute_isv`, copied by
# data-juicer). "in_order" / "shuffled" force one rule; rows arrive grouped by video, so the
# rule changes the number.
IS_SHUFFLE_SEED = 42
IS_SPLIT_ORDERS = ("reference", "in_order", "shuffled")


def is_split_order(metric: dist.MetricName, requested: str) -> str:
    """The split rule that applies: ``in_order`` or ``shuffled``."""
    if requested not in IS_SPLIT_ORDERS:
        raise ValueError(f"is_split_order must be one of {', '.join(IS_SPLIT_ORDERS)}, not {requested!r}")
    if requested == "reference":
        return "shuffled" if metric.is_video else "in_order"
    return requested

UNITS = {
    "fd": "squared distance in detector feature space",
    "kd": "raw MMD^2 (StyleGAN-V / data-juicer scale; StyleGAN2-ADA papers print x1000)",
    "is": "inception score, exp(mean KL), between 1 and the number of classes",
    "precision": "fraction of candidate samples inside the reference manifold",
    "recall": "fraction of reference samples inside the candidate manifold",
}


# --------------------------------------------------------------------------- feature sets


@dataclass
class FeatureSet:
    """A stored feature set (its ``feature_sets`` row) and whether it was reused."""

    row: dict[str, Any]
    reused: bool
    _data: Optional[feature_store.StoredFeatures] = None

    @property
    def id(self) -> int:
        return int(self.row["id"])

    @property
    def n_items(self) -> int:
        return int(self.row["n_items"])

    def data(self) -> feature_store.StoredFeatures:
        if self._data is None:
            self._data = feature_store.read(self.row["features_uri"], self.row["features_sha256"])
        return self._data


def feature_spec(metric: dist.MetricName, detector: Detector, *, height: int, width: int, seed: int,
                 offset: Offset) -> FeatureSpec:
    """The features ``metric`` needs (IS/ISV read probabilities; the others features)."""
    if height < 8 or width < 8:
        raise ValueError("height and width must be at least 8 pixels")
    output = "probs" if metric.family == "inception_score" else "features"
    return FeatureSpec(
        detector=detector.name, detector_sha256=detector.sha256, output=output,
        unit="clip" if metric.is_video else "frame",
        n_frames=metric.n_frames, subsample=metric.subsample,
        offset=offset if metric.is_video else "start",
        height=int(height), width=int(width), max_items=metric.n_samples, seed=int(seed),
        call=json.dumps(detector.spec.call_kwargs(output), sort_keys=True),
    )


def ensure_feature_set(
    engine: Engine,
    storage: Storage,
    resolved: ResolvedSet,
    spec: FeatureSpec,
    detector: Detector,
    *,
    refresh: bool = False,
    progress: Optional[Callable[[int, int], None]] = None,
) -> FeatureSet:
    """The feature set of ``resolved`` under ``spec``: reused when stored (row and file), else
    extracted, written to feature storage and recorded."""
    set_key = spec.set_key(resolved.digest)
    row = db.feature_set_row(engine, set_key)
    if row and not refresh and feature_store.exists(row["features_uri"]):
        return FeatureSet(row, reused=True)
    if not resolved.members:
        raise SetMetricError(f"{resolved.label}: no readable videos" + _first_reason(resolved.failures))
    extraction = extract_features(resolved.members, spec, detector, storage, progress)
    failures = resolved.failures + extraction.failures
    transient = [f for f in failures if f.get("transient")]
    if transient:
        raise TransientSetError(
            f"{resolved.label}: {len(transient)} videos could not be read for now; nothing stored, retry "
            f"to extract the complete set" + _first_reason(transient)
        )
    stats = extraction.stats
    if stats.num_items == 0:
        raise SetMetricError(
            f"{resolved.label}: no usable {spec.unit}s for {detector.name} "
            f"({extraction.n_short} videos shorter than {spec.n_frames * spec.subsample} frames, "
            f"{len(failures)} failed)" + _first_reason(failures)
        )
    mean, cov = stats.mean_cov(0)
    blob = feature_store.encode(stats.features(), mean, cov, extraction.sample_uris, extraction.sample_frames)
    # The file name carries its checksum: a file at that name is exactly what the row recorded,
    # even when two builders of the same set race.
    uri = feature_store.location_for(set_key, feature_store.digest(blob))
    sha = feature_store.write(uri, blob)
    values = dict(
        set_key=set_key, content_digest=resolved.digest, source=resolved.label,
        detector=detector.name, detector_file=detector.spec.filename, detector_sha256=detector.sha256,
        output=spec.output, unit=spec.unit, n_frames=spec.n_frames, subsample=spec.subsample,
        clip_offset=spec.offset, height=spec.height, width=spec.width, max_items=spec.max_items,
        seed=spec.seed, sampling_rules=spec.rules, resize=RESIZE_METHOD, covariance=COVARIANCE_CONVENTION,
        n_members=len(resolved.members) + len(resolved.failures), n_items=stats.num_items,
        n_short=extraction.n_short, n_failed=len(failures), failures=failures[:1000],
        feature_dim=stats.num_features, mean=[float(v) for v in mean], cov_trace=float(np.trace(cov)),
        features_uri=uri, features_sha256=sha, features_bytes=len(blob), seconds=extraction.seconds,
        vidqa_version=__version__,
    )
    return FeatureSet(db.upsert_feature_set(engine, values), reused=False)


def _first_reason(failures: list[dict[str, str]]) -> str:
    return f"; first failure: {failures[0]['uri']}: {failures[0]['reason']}" if failures else ""


# --------------------------------------------------------------------------- references


@dataclass
class BuildOptions:
    height: int = DEFAULT_HEIGHT
    width: int = DEFAULT_WIDTH
    seed: int = 0
    num_runs: int = 1
    detector_path: Optional[str] = None
    refresh: bool = False


def build_reference(
    engine: Engine, name: str, source: str, metrics: list[str], options: BuildOptions = BuildOptions(),
    *, storage: Optional[Storage] = None, video_key: str = "video_path",
    progress: Optional[Callable[[str, int, int], None]] = None,
) -> list[dict[str, Any]]:
    """Register ``name`` -> ``source`` and build its reference features for ``metrics`` (one
    feature set per distinct spec and run seed); returns a summary row per feature set."""
    parsed = [dist.parse_metric_name(m) for m in metrics]
    no_reference = [m.name for m in parsed if not m.needs_real]
    if no_reference and len(no_reference) == len(parsed):
        raise SetMetricError(f"{', '.join(no_reference)} compare no reference (IS/ISV score the candidate alone)")
    storage = storage or Storage()
    register_reference(engine, name, source, video_key)
    resolved = resolve_set(engine, storage, SetSource(source=source, video_key=video_key))
    out, built = [], {}
    for metric in parsed:
        if not metric.needs_real:
            continue
        detector = load_detector(metric.detector, options.detector_path)
        for r in range(options.num_runs):
            spec = feature_spec(metric, detector, height=options.height, width=options.width,
                                seed=options.seed + r, offset="random")
            if spec not in built:  # FVD, KVD and PRV with equal settings share one feature set
                report = (lambda done, total, m=metric.name: progress(m, done, total)) if progress else None
                built[spec] = ensure_feature_set(engine, storage, resolved, spec, detector,
                                                 refresh=options.refresh, progress=report)
            fs = built[spec]
            out.append({"metric": metric.name, "seed": spec.seed, "feature_set": fs.id, "reused": fs.reused,
                        "n_items": fs.n_items, "n_short": fs.row["n_short"], "n_failed": fs.row["n_failed"],
                        "features_uri": fs.row["features_uri"], "content_digest": fs.row["content_digest"]})
    return out


# --------------------------------------------------------------------------- metric values


@dataclass
class MetricOptions(BuildOptions):
    candidate_offset: Offset = "start"
    bootstrap: int = 0
    alpha: float = 0.05
    is_split_order: str = "reference"  # see IS_SPLIT_ORDERS


def _evaluate(metric: dist.MetricName, real: Optional[feature_store.StoredFeatures],
              fake: feature_store.StoredFeatures, seed: int, device=None,
              split_order: str = "reference") -> dict[str, tuple[float, Optional[float], dict]]:
    """``{quantity: (value, split_std, details)}`` for one run."""
    if metric.family == "frechet":
        info = dist.frechet_distance_with_info(real.mean, real.cov, fake.mean, fake.cov)
        return {"fd": (info.value, None, info._asdict())}
    if metric.family == "kernel":
        kd = dist.kernel_inception_distance(real.features, fake.features, KID_NUM_SUBSETS, KID_MAX_SUBSET, seed)
        return {"kd": (kd.mean, kd.std, {"subset_size": kd.subset_size, "num_subsets": kd.num_subsets})}
    if metric.family == "inception_score":
        if len(fake.features) < IS_NUM_SPLITS:
            raise SetMetricError(f"{metric.name} splits its samples into {IS_NUM_SPLITS} parts and needs at least "
                                 f"{IS_NUM_SPLITS}; only {len(fake.features)} were usable")
        score = dist.inception_score(_split_order(fake.features, is_split_order(metric, split_order)), IS_NUM_SPLITS)
        return {"is": (score.mean, score.std, {"splits": len(score.split_scores)})}
    pr = dist.precision_recall(real.features, fake.features, nhood_size=metric.nhood, device=device)
    return {"precision": (pr.precision, None, {}), "recall": (pr.recall, None, {})}


def _split_order(probs: np.ndarray, order: str) -> np.ndarray:
    """The rows IS cuts into splits: as extracted, or shuffled (``order`` as resolved by
    :func:`is_split_order`)."""
    if order == "in_order":
        return probs
    probs = np.array(probs, dtype=np.float64)
    np.random.RandomState(IS_SHUFFLE_SEED).shuffle(probs)
    return probs


def _bootstrap_fn(metric: dist.MetricName, quantity: str, seed: int, split_order: str = "reference"):
    if metric.family == "frechet":
        return lambda r, f: dist.frechet_distance_from_features(r, f)
    if metric.family == "kernel":
        return lambda r, f: dist.kernel_inception_distance(r, f, KID_NUM_SUBSETS, KID_MAX_SUBSET, seed).mean
    if metric.family == "inception_score":
        order = is_split_order(metric, split_order)
        return lambda f: dist.inception_score(_split_order(f, order), IS_NUM_SPLITS).mean
    return lambda r, f: getattr(dist.precision_recall(r, f, nhood_size=metric.nhood), quantity)


def compute_metric(
    engine: Engine,
    metric_name: str,
    candidate: SetSource,
    reference: Optional[str] = None,
    options: MetricOptions = MetricOptions(),
    *,
    storage: Optional[Storage] = None,
    progress: Optional[Callable[[str, int, int], None]] = None,
) -> list[dict[str, Any]]:
    """Compute ``metric_name`` for ``candidate`` against ``reference`` (a registered name or a
    source), store one ``metric_values`` row per quantity and return them."""
    metric = dist.parse_metric_name(metric_name)
    if options.num_runs < 1:
        raise ValueError("num_runs must be >= 1")
    if metric.needs_real and reference is None:
        raise SetMetricError(f"{metric.name} compares against a reference: pass --reference NAME")
    storage = storage or Storage()
    detector = load_detector(metric.detector, options.detector_path)
    cand = resolve_set(engine, storage, candidate)
    ref_name, ref_src, ref = None, None, None
    if metric.needs_real:
        ref_name, ref_src = reference_source(engine, reference)
        ref = resolve_set(engine, storage, ref_src)

    def report(which: str):
        return (lambda done, total: progress(f"{metric.name} {which}", done, total)) if progress else None

    runs: dict[str, list[float]] = {}
    split_stds: dict[str, list[float]] = {}
    run_details: list[dict[str, Any]] = []
    real_sets, fake_sets = [], []
    for r in range(options.num_runs):
        seed = options.seed + r
        fake_spec = feature_spec(metric, detector, height=options.height, width=options.width,
                                 seed=seed, offset=options.candidate_offset)
        fake = ensure_feature_set(engine, storage, cand, fake_spec, detector, refresh=options.refresh,
                                  progress=report("candidate"))
        fake_sets.append(fake)
        real = None
        if ref is not None:
            real_spec = feature_spec(metric, detector, height=options.height, width=options.width,
                                     seed=seed, offset="random")
            real = ensure_feature_set(engine, storage, ref, real_spec, detector, progress=report("reference"))
            real_sets.append(real)
        values = _evaluate(metric, real.data() if real else None, fake.data(), seed, detector.device,
                           options.is_split_order)
        for quantity, (value, split_std, details) in values.items():
            runs.setdefault(quantity, []).append(float(value))
            if split_std is not None:
                split_stds.setdefault(quantity, []).append(float(split_std))
            run_details.append({"run": r, "seed": seed, "quantity": quantity, **_jsonable(details)})

    n_real = real_sets[0].n_items if real_sets else None
    n_fake = fake_sets[0].n_items
    warnings = [w for w in (dist.sample_count_warning(metric, n_real, n_fake),) if w]
    for which, sets in (("candidate", fake_sets), ("reference", real_sets)):
        if sets and (sets[0].row["n_short"] or sets[0].row["n_failed"]):
            warnings.append(f"{which}: {sets[0].row['n_short']} videos skipped as shorter than a clip, "
                            f"{sets[0].row['n_failed']} failed")
    cis: dict[str, dist.BootstrapInterval] = {}
    if options.bootstrap:
        for quantity in runs:
            fn = _bootstrap_fn(metric, quantity, options.seed, options.is_split_order)
            sets = ([real_sets[0].data().features] if real_sets else []) + [fake_sets[0].data().features]
            cis[quantity] = dist.bootstrap_ci(fn, *sets, n_boot=options.bootstrap, alpha=options.alpha,
                                              seed=options.seed)
    rows = []
    for quantity, values in runs.items():
        ci = cis.get(quantity)
        rows.append(dict(
            metric=metric.name, quantity=quantity, value=float(np.mean(values)), unit=UNITS[quantity],
            run_std=float(np.std(values)) if len(values) > 1 else None,
            split_std=float(np.mean(split_stds[quantity])) if quantity in split_stds else None,
            ci_low=ci.low if ci else None, ci_high=ci.high if ci else None,
            ci_level=(1 - options.alpha) if ci else None, n_boot=options.bootstrap or None,
            num_runs=options.num_runs, run_values=values, seed=options.seed,
            reference_name=ref_name, reference_source=ref.label if ref else None,
            candidate_source=cand.label,
            reference_set_ids=[s.id for s in real_sets], candidate_set_ids=[s.id for s in fake_sets],
            detector=detector.name, detector_sha256=detector.sha256,
            height=options.height, width=options.width, n_frames=metric.n_frames, subsample=metric.subsample,
            reference_offset="random" if ref else None,
            candidate_offset=options.candidate_offset if metric.is_video else "start",
            n_real=n_real, n_fake=n_fake, n_promised=metric.n_samples, covariance=COVARIANCE_CONVENTION,
            warning="; ".join(warnings) or None,
            details={"runs": [d for d in run_details if d["quantity"] == quantity],
                     "detector_file": detector.spec.filename, "resize": RESIZE_METHOD,
                     "reused_feature_sets": [s.id for s in real_sets + fake_sets if s.reused],
                     **({"kid_subsets": KID_NUM_SUBSETS, "kid_max_subset_size": KID_MAX_SUBSET}
                        if metric.family == "kernel" else {}),
                     **({"is_splits": IS_NUM_SPLITS, "is_split_order": is_split_order(metric, options.is_split_order),
                         **({"is_shuffle": f"RandomState({IS_SHUFFLE_SEED})"}
                            if is_split_order(metric, options.is_split_order) == "shuffled" else {})}
                        if metric.family == "inception_score" else {})},
            vidqa_version=__version__,
        ))
    for row, id_ in zip(rows, db.insert_metric_values(engine, rows)):
        row["id"] = id_
    if warnings:
        log.warning("%s: %s", metric.name, "; ".join(warnings))
    return rows


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    """Scalars only; non-finite floats (e.g. a failed sqrtm's residual) become None (JSONB has no inf)."""
    out: dict[str, Any] = {}
    for k, v in details.items():
        if isinstance(v, (float, np.floating)):
            out[k] = float(v) if np.isfinite(v) else None
        elif isinstance(v, (int, np.integer)):
            out[k] = int(v)
        elif isinstance(v, str):
            out[k] = v
    return out
