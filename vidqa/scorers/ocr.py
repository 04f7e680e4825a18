"""On-screen text: how much of each sampled frame detected text covers (data-juicer's
``video_ocr_area_ratio_filter``, on PP-OCRv4's detector; vidqa.models.ocr says why that one),
the number of text boxes, and optionally the text read (in ``details``)."""

from __future__ import annotations

from typing import ClassVar, Optional

import numpy as np
from pydantic import Field

from vidqa.metrics.text_area import text_area_ratio
from vidqa.models.ocr import OcrEngine, OcrWeights
from vidqa.scorers.base import Metric, ScoreItem, Scorer, ScorerConfig, Weights, weights_file_field
from vidqa.video.sampling import SamplingSpec


class OcrConfig(ScorerConfig):
    sampling: SamplingSpec = Field(default_factory=lambda: SamplingSpec(method="uniform", n=3),
                                   description="Frames searched for text (data-juicer: frame_sample_num 3).")
    recognize: bool = Field(False, description="Also read the text (PP-OCRv4 recogniser) into details.text.")
    det_model: Optional[str] = weights_file_field("ONNX text detector (default: PP-OCRv4's, in rapidocr-onnxruntime).")
    rec_model: Optional[str] = weights_file_field("ONNX text recogniser (default: PP-OCRv4's).")


class OcrScorer(Scorer):
    name = "ocr"
    title: ClassVar[str] = "On-screen text"
    summary: ClassVar[str] = "Share of each frame covered by detected text (data-juicer's OCR area ratio)."
    version = "1"
    config_model = OcrConfig
    metrics = ("ocr_area_ratio_mean", "ocr_area_ratio_max", "ocr_boxes")

    def weights(self) -> dict[str, Weights]:
        c = self.config
        return {"ocr": OcrWeights(c.det_model, c.rec_model, c.recognize, c.runtime.resolved_device())}

    @property
    def engine(self) -> OcrEngine:
        return self.models["ocr"]

    def score(self, items: list[ScoreItem]) -> list[dict[str, Metric] | Exception]:
        return [self._score_one(item) for item in items]

    def _score_one(self, item: ScoreItem) -> dict[str, Metric]:
        frames = item.frames.array
        height, width = frames.shape[1:3]
        ratios, counts, texts = [], [], []
        for frame in frames:
            if self.config.recognize:
                found = self.engine.read(frame)
                boxes = [box for box, _, _ in found]
                texts.append([{"text": t, "confidence": round(c, 4)} for _, t, c in found])
            else:
                boxes = self.engine.detect(frame)
            ratios.append(text_area_ratio(boxes, width, height))
            counts.append(len(boxes))
        details = {"frame_ratios": [round(r, 6) for r in ratios], "frame_boxes": counts}
        if self.config.recognize:
            details["text"] = texts
        return {"ocr_area_ratio_mean": Metric.of(float(np.mean(ratios)), details),
                "ocr_area_ratio_max": Metric.of(float(np.max(ratios)), details),
                "ocr_boxes": Metric.of(float(np.mean(counts)), details)}
