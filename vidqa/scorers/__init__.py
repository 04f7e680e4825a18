"""Scorer registry: names to classes, and a per-process cache so models load once."""

from __future__ import annotations

from typing import Any

from vidqa.scorers.base import Metric, Resources, ScoreItem, Scorer, ScorerConfig
from vidqa.scorers.technical import TechnicalConfig, TechnicalScorer

SCORERS: dict[str, type[Scorer]] = {TechnicalScorer.name: TechnicalScorer}

_resident: dict[tuple[str, str], Scorer] = {}


def build_scorer(name: str, config: dict[str, Any] | ScorerConfig | None = None) -> Scorer:
    """The scorer ``name`` with ``config``, reused within this process (models stay resident)."""
    try:
        cls = SCORERS[name]
    except KeyError:
        raise ValueError(f"unknown scorer {name!r}; known: {', '.join(sorted(SCORERS))}") from None
    scorer = cls(config)
    key = (name, scorer.config_hash)
    return _resident.setdefault(key, scorer)


__all__ = [
    "SCORERS", "Metric", "Resources", "ScoreItem", "Scorer", "ScorerConfig",
    "TechnicalConfig", "TechnicalScorer", "build_scorer",
]
