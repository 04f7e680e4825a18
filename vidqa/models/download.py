"""Fetch every configured model into a models directory, on a machine with network, for
machines without it (``vidqa models download --dir D``; then set ``VIDQA_MODELS_DIR=D``).

Each weights declaration (``ClipWeights``, ``AestheticHeadWeights``, ...) plans its own files
(``files(models_dir)``); the layout is the one ``load_clip`` and ``load_aesthetic_head`` search:
``D/open_clip/<name>/<tag>/<file>`` for open_clip tags, ``D/hf-hub/<org>/<repo>/`` for Hub
repositories, and ``D/laion-aesthetic/<file>`` for the LAION heads.
"""

from __future__ import annotations

import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


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
