"""Scorer registry: names to classes, and a per-process cache so models load once."""

from __future__ import annotations

import importlib
import json
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Optional

from vidqa.scorers.base import Metric, Resources, ScoreItem, Scorer, ScorerConfig

# name -> (module, scorer class, config class). Modules are imported on first use: a process
# that runs only the technical scorer (a fanned-out shard, say) never imports torch.
_SCORER_MODULES = {
    "technical": ("vidqa.scorers.technical", "TechnicalScorer", "TechnicalConfig"),
    "emscore": ("vidqa.scorers.emscore", "EMScoreScorer", "EMScoreConfig"),
    "text_video": ("vidqa.scorers.text_video", "TextVideoScorer", "TextVideoConfig"),
    "video_audio": ("vidqa.scorers.video_audio", "VideoAudioScorer", "VideoAudioConfig"),
    "aesthetic": ("vidqa.scorers.aesthetic", "AestheticScorer", "AestheticConfig"),
    "videoscore": ("vidqa.scorers.videoscore", "VideoScoreScorer", "VideoScoreConfig"),
}
_EXPORTS = {attr: module for module, *attrs in _SCORER_MODULES.values() for attr in attrs}


class _Registry(Mapping[str, "type[Scorer]"]):
    """Scorer names to classes, each imported when first looked up."""

    def __getitem__(self, name: str) -> type[Scorer]:
        module, scorer, _ = _SCORER_MODULES[name]
        return getattr(importlib.import_module(module), scorer)

    def __iter__(self) -> Iterator[str]:
        return iter(_SCORER_MODULES)

    def __len__(self) -> int:
        return len(_SCORER_MODULES)


SCORERS: Mapping[str, type[Scorer]] = _Registry()


def __getattr__(name: str) -> Any:
    # `from vidqa.scorers import TechnicalConfig` imports that scorer's module only (PEP 562).
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    torch = sys.modules.get("torch")  # no torch imported: no GPU memory to give back
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


__all__ = [
    "release_resident_scorers",
    "SCORERS", "Metric", "Resources", "ScoreItem", "Scorer", "ScorerConfig",
    "TechnicalConfig", "TechnicalScorer", "EMScoreConfig", "EMScoreScorer", "TextVideoConfig",
    "TextVideoScorer", "VideoAudioConfig", "VideoAudioScorer", "AestheticConfig", "AestheticScorer", "VideoScoreConfig",
    "VideoScoreScorer", "build_scorer",
]
