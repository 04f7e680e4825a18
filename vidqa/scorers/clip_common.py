"""What every CLIP-based scorer shares: the model setting, loading it once, and encoding the
frames of a whole batch of clips in large encoder batches."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from vidqa.models import resolve_precision
from vidqa.models.clip import ClipModel, encode_pixels, encode_texts, load_clip
from vidqa.scorers.base import Resources, Runtime, Scorer


class ClipModelConfig(BaseModel):
    """Which CLIP: see ``vidqa.models.clip.load_clip`` for every accepted form."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(
        "ViT-B-32",
        description="open_clip name (ViT-B-32), OpenAI name (ViT-B/32), HF id (openai/clip-vit-base-patch32) "
        "or an open_clip config .json.",
    )
    pretrained: Optional[str] = Field(
        "openai",
        description="open_clip tag, local checkpoint file or folder, or hf-hub:org/repo; empty = random init.",
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on CUDA, fp32 on CPU."
    )


def resolve_device(runtime: Runtime) -> str:
    if runtime.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return runtime.device


def load_configured_clip(cfg: ClipModelConfig, runtime: Runtime) -> ClipModel:
    device = resolve_device(runtime)
    precision = resolve_precision(cfg.precision, device)
    return load_clip(cfg.model, cfg.pretrained or None, device=device, precision=precision)


class ClipScorer(Scorer):
    """A scorer with a resident CLIP model (loaded when the scorer is built, once per process)."""

    resources: ClassVar[Resources] = Resources(gpus=0.25, batch_size=32)

    def __init__(self, config=None):
        super().__init__(config)
        self.clip = load_configured_clip(self.config.clip, self.config.runtime)

    def model_identity(self) -> dict[str, Any]:
        return {"clip": self.clip.identity()}

    def encode_frames(self, frame_arrays: list) -> list[torch.Tensor]:
        """Per array of RGB frames ``(T_i, H_i, W_i, 3)``, ``(T_i, D)`` unit embeddings; the
        frames of all arrays (clips of many videos) go through the encoder together, in
        batches of ``runtime.batch_size``."""
        pixels = [self.clip.preprocess(frames) for frames in frame_arrays]
        embeddings = encode_pixels(self.clip, torch.cat(pixels), self.config.runtime.batch_size)
        return list(embeddings.split([p.shape[0] for p in pixels]))

    def text_similarities(self, frame_arrays: list, texts: list[str], flip: str = "none") -> list[torch.Tensor]:
        """Per clip, the cosine of each frame (and its flipped copies, after the originals)
        with the clip's text; each distinct text is encoded once, all frames in one batch."""
        distinct = list(dict.fromkeys(texts))
        text_emb = dict(zip(distinct, encode_texts(self.clip, distinct)))
        frames = self.encode_frames([flip_frames(a, flip) for a in frame_arrays])
        return [f @ text_emb[t] for f, t in zip(frames, texts)]


def flip_frames(frames: np.ndarray, mode: str) -> np.ndarray:
    """Frames plus their flipped copies (DataFlow-MM adds flips; it does not replace)."""
    if mode == "none":
        return frames
    extra = []
    if mode in ("horizontal", "both"):
        extra.append(frames[:, :, ::-1])
    if mode in ("vertical", "both"):
        extra.append(frames[:, ::-1, :])
    return np.ascontiguousarray(np.concatenate([frames, *extra]))
