"""No-reference image quality per sampled frame: BRISQUE (trained regressor from the ``brisque``
package) and PIQE (no training), VideoScore's weight-free baselines; mean over frames. Formulas
in :mod:`vidqa.metrics.brisque` and :mod:`vidqa.metrics.piqe`."""

from __future__ import annotations

from typing import ClassVar, Optional

import numpy as np
from pydantic import Field

from vidqa.metrics.brisque import BrisqueUndefined, brisque
from vidqa.metrics.piqe import piqe
from vidqa.models.brisque import BrisqueWeights
from vidqa.scorers.base import Metric, ScoreItem, Scorer, ScorerConfig, Weights, weights_file_field
from vidqa.video.sampling import SamplingSpec


class IqaConfig(ScorerConfig):
    sampling: SamplingSpec = Field(default_factory=lambda: SamplingSpec(method="uniform", n=3),
                                   description="Frames rated (both measures read each frame at its decoded size).")
    brisque_svm: Optional[str] = weights_file_field("libsvm BRISQUE regressor (default: the brisque package's "
                                                    "svm.txt).")
    brisque_ranges: Optional[str] = weights_file_field("Its feature ranges pickle (default: the package's "
                                                       "normalize.pickle).")


class IqaScorer(Scorer):
    name = "iqa"
    title: ClassVar[str] = "No-reference quality"
    summary: ClassVar[str] = "BRISQUE and PIQE per frame, mean over frames (lower is better)."
    version = "1"
    config_model = IqaConfig
    metrics = ("brisque", "piqe")

    def weights(self) -> dict[str, Weights]:
        return {"brisque": BrisqueWeights(self.config.brisque_svm, self.config.brisque_ranges)}

    def score(self, items: list[ScoreItem]) -> list[dict[str, Metric] | Exception]:
        return [self._score_one(item) for item in items]

    def _score_one(self, item: ScoreItem) -> dict[str, Metric]:
        model = self.models["brisque"].model
        frames = item.frames.array
        brisques: list[Optional[float]] = []
        undefined: list[str] = []
        for frame in frames:
            try:
                brisques.append(brisque(frame, model))
            except BrisqueUndefined as exc:  # a flat frame (a fade to black)
                brisques.append(None)
                undefined.append(str(exc))
        piqes = [piqe(frame) for frame in frames]
        size = [int(frames.shape[2]), int(frames.shape[1])]
        defined = [b for b in brisques if b is not None]
        brisque_details = {"frames": [None if b is None else round(b, 6) for b in brisques], "frame_size": size}
        if undefined:
            brisque_details["undefined_frames"] = sorted(set(undefined))
        if defined:
            brisque_metric = Metric.of(float(np.mean(defined)), brisque_details)
        else:
            brisque_metric = Metric(None, {**brisque_details, "undefined": f"no frame has contrast ({undefined[0]})"})
        return {"brisque": brisque_metric,
                "piqe": Metric.of(float(np.mean(piqes)), {"frames": [round(p, 6) for p in piqes], "frame_size": size})}
