"""Configured scorers: the registry (the one list of scorer names) and building them.

Adding a scorer is its module plus one line in ``REGISTRY``: the flow form, the CLI's help
and ``vidqa models`` follow from it (see CONTRIBUTING.md).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator, Mapping
from typing import Any, Optional

from vidqa.models.resident import release_resident, resident
from vidqa.scorers.base import ClipNeeds, Metric, Resources, ScoreItem, Scorer, ScorerConfig

# name -> "module:class". Modules are imported on first use: a process that runs only the
# technical scorer (a fanned-out shard, say) never imports torch.
REGISTRY: dict[str, str] = {
    "technical": "vidqa.scorers.technical:TechnicalScorer",
    "emscore": "vidqa.scorers.emscore:EMScoreScorer",
    "text_video": "vidqa.scorers.text_video:TextVideoScorer",
    "video_audio": "vidqa.scorers.video_audio:VideoAudioScorer",
    "aesthetic": "vidqa.scorers.aesthetic:AestheticScorer",
    "videoscore": "vidqa.scorers.videoscore:VideoScoreScorer",
    "motion": "vidqa.scorers.motion:MotionScorer",
    "clip_consistency": "vidqa.scorers.clip_consistency:ClipConsistencyScorer",
    "ocr": "vidqa.scorers.ocr:OcrScorer",
    "iqa": "vidqa.scorers.iqa:IqaScorer",
    "embedding": "vidqa.scorers.embedding:EmbeddingScorer",
}


class _Scorers(Mapping[str, "type[Scorer]"]):
    """Scorer names to classes, each imported when first looked up."""

    def __getitem__(self, name: str) -> type[Scorer]:
        try:
            module, cls = REGISTRY[name].split(":")
        except KeyError:
            raise KeyError(f"unknown scorer {name!r}; known: {', '.join(REGISTRY)}") from None
        return getattr(importlib.import_module(module), cls)

    def __iter__(self) -> Iterator[str]:
        return iter(REGISTRY)

    def __len__(self) -> int:
        return len(REGISTRY)


SCORERS: Mapping[str, type[Scorer]] = _Scorers()
SCORER_NAMES: tuple[str, ...] = tuple(REGISTRY)


def build_scorer(
    name: str, config: dict[str, Any] | ScorerConfig | None = None, context: Optional[dict[str, Any]] = None
) -> Scorer:
    """The scorer ``name`` with ``config`` and run context, one instance per process (its
    models load on ``setup()``, once)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown scorer {name!r}; known: {', '.join(REGISTRY)}")
    cls = SCORERS[name]
    validated = config if isinstance(config, ScorerConfig) else cls.config_model.model_validate(config or {})
    key = ("scorer", name, json.dumps(validated.model_dump(mode="json"), sort_keys=True),
           json.dumps(context or {}, sort_keys=True, default=str))
    return resident(key, lambda: cls(validated, context))


def release_resident_scorers() -> None:
    """Drop this process's scorers and every model they (or anything else) loaded: CLIP,
    heads, audio pipelines, VideoScore, detectors. The next use loads again."""
    release_resident()


__all__ = [
    "REGISTRY", "SCORERS", "SCORER_NAMES", "ClipNeeds", "Metric", "Resources", "ScoreItem", "Scorer", "ScorerConfig",
    "build_scorer", "release_resident_scorers",
]
