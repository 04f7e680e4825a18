"""On-screen text detection: PP-OCRv4 (PaddleOCR's detector and recogniser, Apache-2.0) as ONNX
through the ``rapidocr-onnxruntime`` package, whose wheel carries the weights (15 MB), so OCR
works offline on a plain install.

Why this one: EasyOCR (data-juicer's choice) needs torch's CRAFT at full resolution and its
weights come in a separate 91 MB package; PP-OCRv4 through onnxruntime is a smaller install,
runs on CPU without torch threads fighting the encoders, and has a CUDA execution provider.

========================  ====================================================================
weights                   where
========================  ====================================================================
``None`` (the default)    ``rapidocr_onnxruntime/models/ch_PP-OCRv4_{det,rec}_infer.onnx``
a path                    an ONNX detector (``det``) or recogniser (``rec``) with the same I/O
========================  ====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from vidqa.hashing import file_sha256
from vidqa.packaged import packaged_file
from vidqa.models.resident import resident



def ocr_model_path(part: str, path: Optional[str] = None) -> Path:
    """The ONNX file of the detector (``det``) or recogniser (``rec``)."""
    return packaged_file(f"ocr_{part}", path)


@dataclass(frozen=True)
class OcrWeights:
    """The detector, and the recogniser when text is read too (declared by the ocr scorer)."""

    det_model: Optional[str] = None
    rec_model: Optional[str] = None
    recognize: bool = False
    device: str = "cpu"

    @property
    def what(self) -> str:
        return "PP-OCRv4 text detector" + (" and recogniser" if self.recognize else "")

    def parts(self) -> dict[str, Path]:
        parts = {"det": ocr_model_path("det", self.det_model)}
        if self.recognize:
            parts["rec"] = ocr_model_path("rec", self.rec_model)
        return parts

    def identity(self) -> dict[str, Any]:
        return {part: {"sha256": file_sha256(path)} for part, path in self.parts().items()}

    def files(self, models_dir: Any) -> list:
        return []  # inside the package's wheel: nothing to download

    def load(self) -> "OcrEngine":
        parts = self.parts()
        key = ("ocr", *(str(p.resolve()) for p in parts.values()), self.device)
        return resident(key, lambda: OcrEngine(self, parts))


class OcrEngine:
    """RapidOCR over the declared files; ``detect`` gives text boxes, ``read`` boxes and text."""

    def __init__(self, weights: OcrWeights, parts: dict[str, Path]):
        from rapidocr_onnxruntime import RapidOCR

        kwargs: dict[str, Any] = {"det_model_path": str(parts["det"]), "det_use_cuda": weights.device == "cuda"}
        if "rec" in parts:
            kwargs.update(rec_model_path=str(parts["rec"]), rec_use_cuda=weights.device == "cuda")
        self._engine = RapidOCR(**kwargs)
        self._identity = weights.identity()

    def identity(self) -> dict[str, Any]:
        return self._identity

    def detect(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Text boxes of one RGB frame, each ``(4, 2)`` corner points in pixels."""
        found, _ = self._engine(np.ascontiguousarray(rgb[:, :, ::-1]), use_det=True, use_cls=False, use_rec=False)
        return [np.asarray(box, dtype=np.float64) for box in (found or [])]

    def read(self, rgb: np.ndarray) -> list[tuple[np.ndarray, str, float]]:
        """Text boxes with their recognised text and confidence."""
        found, _ = self._engine(np.ascontiguousarray(rgb[:, :, ::-1]), use_det=True, use_cls=False, use_rec=True)
        return [(np.asarray(box, dtype=np.float64), str(text), float(conf)) for box, text, conf in (found or [])]
