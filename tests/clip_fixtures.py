"""Tiny random CLIP models built from open_clip's real configs, for tests.

The tiny config is ``ViT-B-32``'s own config with every size shrunk: same tower types,
patchified ViT, causal text transformer, the real 49408-token BPE vocabulary and 77-token
context, so the tokenizer, pooling and preprocessing paths are the real ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import open_clip

TINY_CLIP_NAME = "vidqa-tiny-ViT-B-32"


def tiny_clip_config() -> dict:
    config = open_clip.get_model_config("ViT-B-32")
    config["embed_dim"] = 32
    config["quick_gelu"] = True  # as the OpenAI weights, so the QuickGELU path is exercised
    config["vision_cfg"].update(image_size=64, layers=2, width=64, head_width=32, patch_size=16)
    config["text_cfg"].update(width=64, heads=2, layers=2)
    assert config["text_cfg"]["context_length"] == 77 and config["text_cfg"]["vocab_size"] == 49408
    return config


def write_tiny_clip_config(folder: Path) -> Path:
    """Write the tiny config as ``<folder>/vidqa-tiny-ViT-B-32.json``; pass that path to load_clip."""
    path = Path(folder) / f"{TINY_CLIP_NAME}.json"
    path.write_text(json.dumps(tiny_clip_config(), indent=2))
    return path
