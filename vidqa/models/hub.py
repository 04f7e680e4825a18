"""Find a Hugging Face *transformers* model folder offline, and name its weights.

A model is given as a local folder or a Hub id (``openai/whisper-tiny``). A Hub id is looked
up, in order, in ``<VIDQA_MODELS_DIR>/hf-hub/<org>/<name>/`` (what ``vidqa models download``
fills) and in the Hugging Face hub cache (what ``hf download`` fills; ``HF_HUB_CACHE`` and
``HF_HOME`` are honoured). Nothing is downloaded; when the folder is missing the error says
where it looked and how to provide it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional

from huggingface_hub import constants as hf_constants
from huggingface_hub import snapshot_download

from vidqa.errors import ScorerError
from vidqa.hashing import file_sha256
from vidqa.models import MODELS_DIR_ENV
from vidqa.models.download import WeightFile

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def _is_model_folder(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(
        p.suffix in WEIGHT_SUFFIXES for p in folder.iterdir() if p.is_file()
    )


def hub_target(repo: str, models_dir: Optional[str | os.PathLike] = None) -> Path:
    """Where ``vidqa models download`` puts a Hub repository inside a models directory."""
    return Path(models_dir or f"${MODELS_DIR_ENV}") / "hf-hub" / repo


def resolve_hf_model(
    model: str, what: str, models_dir: Optional[str | os.PathLike] = None, cache_dir: Optional[str] = None
) -> Path:
    """The local folder holding ``model`` (a folder path or a Hub id); ScorerError if none."""
    path = Path(model).expanduser()
    if path.exists():
        if path.is_dir() and _is_model_folder(path):
            return path
        raise ScorerError(f"{what}: {path} is not a transformers model folder (config.json and weights)")
    models_dir = models_dir if models_dir is not None else os.environ.get(MODELS_DIR_ENV)
    looked_for = []
    if models_dir:
        folder = Path(models_dir) / "hf-hub" / model
        looked_for.append(str(folder))
        if folder.is_dir() and _is_model_folder(folder):
            return folder
    root = Path(cache_dir) if cache_dir else Path(hf_constants.HF_HUB_CACHE)
    looked_for.append(str(root / f"models--{model.replace('/', '--')}" / "snapshots" / "<revision>"))
    try:
        snapshot = Path(snapshot_download(model, local_files_only=True, cache_dir=cache_dir))
        if _is_model_folder(snapshot):
            return snapshot
    except Exception:  # not cached, or not even a valid repo id: report below
        pass
    target = hub_target(model, models_dir)
    raise ScorerError(
        f"{what} {model!r} is not available offline. Looked for:\n  "
        + "\n  ".join(looked_for)
        + "\nTo provide it, on a machine with network run\n"
        f"  hf download {model} --local-dir {target}\n"
        f"(or `vidqa models download --dir DIR` for every configured model), copy that folder here and set "
        f"{MODELS_DIR_ENV} to the folder above 'hf-hub' (or give the folder's path as the model)."
    )


def folder_weights_id(folder: Path) -> str:
    """A hash of a model folder's config and weight files (their content hashes), so a
    changed checkpoint under the same name changes the identity of every score it made."""
    digest = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.is_file() and (p.suffix in WEIGHT_SUFFIXES or p.name == "config.json"):
            digest.update(f"{p.name}:{file_sha256(p)}\n".encode())
    return digest.hexdigest()[:16]


def hf_model_files(model: str, what: str, models_dir: Path) -> list[WeightFile]:
    """A transformers model folder (config, weights, tokenizer, processor) from the Hub;
    nothing for a local folder."""
    if os.path.exists(model):
        return []
    return [WeightFile(what + " " + model, models_dir / "hf-hub" / model, repo=model,
                       patterns=("*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken"))]
