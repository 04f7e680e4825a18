"""Fetch every configured model into a models directory, on a machine with network, for
machines without it (``vidqa models download --dir D``; then set ``VIDQA_MODELS_DIR=D``).

The layout is the one ``load_clip`` and ``load_aesthetic_head`` search:
``D/open_clip/<name>/<tag>/<file>`` for open_clip tags, ``D/hf-hub/<org>/<repo>/`` for Hub
repositories, and ``D/laion-aesthetic/<file>`` for the LAION heads.
"""

from __future__ import annotations

import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import open_clip
from open_clip.pretrained import get_pretrained_cfg

from vidqa.errors import ScorerError
from vidqa.models.aesthetic import KNOWN_HEADS, MODELS_SUBDIR
from vidqa.models.clip import HF_HUB_PREFIX, _hub_weight_candidates, canonical_clip_id


@dataclass(frozen=True)
class WeightFile:
    """One file to fetch: from a Hub repository (``repo`` + ``filename``; ``filename`` None
    means the repository's files matching ``patterns``) or a URL, into ``target`` (a file or
    folder)."""

    what: str
    target: Path
    repo: Optional[str] = None
    filename: Optional[str] = None
    url: Optional[str] = None
    patterns: tuple[str, ...] = ("open_clip_*",)

    @property
    def source(self) -> str:
        return self.url or f"hf://{self.repo}/{self.filename or ','.join(self.patterns)}"


def clip_weight_files(name: str, pretrained: Optional[str], models_dir: Path) -> list[WeightFile]:
    """What ``load_clip(name, pretrained)`` needs; nothing for random init or local files."""
    name, pretrained = canonical_clip_id(name, pretrained)
    if pretrained is None or os.path.exists(pretrained):
        return []
    if pretrained.startswith(HF_HUB_PREFIX):
        repo = pretrained[len(HF_HUB_PREFIX):]
        return [WeightFile(f"CLIP {repo}", models_dir / "hf-hub" / repo, repo=repo)]
    if open_clip.get_model_config(name) is None:
        raise ScorerError(f"unknown CLIP model {name!r}")
    tag = pretrained.lower().replace("-", "_")
    cfg = get_pretrained_cfg(name, pretrained)
    if not cfg:
        raise ScorerError(f"pretrained={pretrained!r} is not an open_clip tag for {name}")
    folder = models_dir / "open_clip" / name / tag
    if cfg.get("hf_hub"):
        repo, hub_file = os.path.split(cfg["hf_hub"])
        filename = _hub_weight_candidates(hub_file)[-1]  # the file open_clip itself fetches
        return [WeightFile(f"CLIP {name} ({tag})", folder / filename, repo=repo, filename=filename)]
    url = cfg["url"]
    return [WeightFile(f"CLIP {name} ({tag})", folder / os.path.basename(url), url=url)]


def aesthetic_head_files(head: str, models_dir: Path) -> list[WeightFile]:
    if os.path.exists(head) or head not in KNOWN_HEADS:
        return []
    return [WeightFile(f"aesthetic head {head}", models_dir / MODELS_SUBDIR / head, url=KNOWN_HEADS[head])]


def hf_model_files(model: str, what: str, models_dir: Path) -> list[WeightFile]:
    """A transformers model folder (config, weights, tokenizer, processor) from the Hub;
    nothing for a local folder."""
    if os.path.exists(model):
        return []
    return [WeightFile(what + " " + model, models_dir / "hf-hub" / model, repo=model,
                       patterns=("*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken"))]


def download(files: list[WeightFile]) -> None:
    """Fetch each file that is not there yet (needs network)."""
    for f in files:
        if f.target.exists():
            continue
        if f.url:
            f.target.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.target.with_name(f.target.name + ".part")
            urllib.request.urlretrieve(f.url, tmp)
            os.replace(tmp, f.target)
            continue
        from huggingface_hub import hf_hub_download, snapshot_download

        if f.filename:
            hf_hub_download(f.repo, f.filename, local_dir=f.target.parent)
        else:
            snapshot_download(f.repo, allow_patterns=list(f.patterns), local_dir=f.target)
