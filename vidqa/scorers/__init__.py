"""Scorer registry: names to classes, and a per-process cache so models load once."""

from __future__ import annotations

import json
import threading
from typing import Any, Optional

from vidqa.scorers.base import Metric, Resources, ScoreItem, Scorer, ScorerConfig
from vidqa.scorers.aesthetic import AestheticConfig, AestheticScorer
from vidqa.scorers.emscore import EMScoreConfig, EMScoreScorer
from vidqa.scorers.technical import TechnicalConfig, TechnicalScorer
from vidqa.scorers.text_video import TextVideoConfig, TextVideoScorer
from vidqa.scorers.video_audio import VideoAudioConfig, VideoAudioScorer
from vidqa.scorers.videoscore import VideoScoreConfig, VideoScoreScorer

SCORERS: dict[str, type[Scorer]] = {
    cls.name: cls for cls in (TechnicalScorer, EMScoreScorer, TextVideoScorer, VideoAudioScorer, AestheticScorer,
                             VideoScoreScorer)
}

_resident: dict[tuple[str, str, str], Scorer] = {}
_lock = threading.Lock()


def build_scorer(
    name: str, config: dict[str, Any] | ScorerConfig | None = None, context: Optional[dict[str, Any]] = None
) -> Scorer:
    """The scorer ``name`` with ``config`` and run context, reused within this process
    (models stay resident: a scorer instance loads its model once)."""
    try:
        cls = SCORERS[name]
    except KeyError:
        raise ValueError(f"unknown scorer {name!r}; known: {', '.join(sorted(SCORERS))}") from None
    validated = cls.config_model.model_validate(config or {}) if not isinstance(config, ScorerConfig) else config
    key = (name, json.dumps(validated.model_dump(mode="json"), sort_keys=True),
           json.dumps(context or {}, sort_keys=True, default=str))
    with _lock:
        scorer = _resident.get(key)
        if scorer is None:
            scorer = cls(validated)
            if context:
                scorer.bind(context)
            _resident[key] = scorer
    return scorer


def release_resident_scorers() -> None:
    """Drop this process's resident scorers and their models (a fan-out parent loads them only
    to name their configuration; the shards' processes load their own)."""
    import gc

    with _lock:
        _resident.clear()
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


__all__ = [
    "release_resident_scorers",
    "SCORERS", "Metric", "Resources", "ScoreItem", "Scorer", "ScorerConfig",
    "TechnicalConfig", "TechnicalScorer", "EMScoreConfig", "EMScoreScorer", "TextVideoConfig",
    "TextVideoScorer", "VideoAudioConfig", "VideoAudioScorer", "AestheticConfig", "AestheticScorer", "VideoScoreConfig",
    "VideoScoreScorer", "build_scorer",
]
