"""What every CLIP-based scorer shares: the model setting, its weights declaration, and
encoding the frames of a whole batch of clips in large encoder batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Optional

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from vidqa.hashing import stable_hash
from vidqa.models import resolve_precision
from vidqa.models.clip_model import ClipModel, ClipWeights, encode_pixels, encode_texts
from vidqa.scorers.base import CliFlags, Resources, Scorer, ScorerConfig, Weights
from vidqa.video.decode import Frames


class ClipModelConfig(BaseModel):
    """Which CLIP: see ``vidqa.models.clip_model.load_clip`` for every accepted form."""

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


class ClipBasedConfig(ScorerConfig):
    """A configuration with a ``clip`` model; ``--clip-model NAME[@PRETRAINED]`` sets it."""

    clip: ClipModelConfig = Field(default_factory=ClipModelConfig, description="CLIP model.")

    @classmethod
    def flag_overrides(cls, flags: CliFlags) -> dict[str, Any]:
        out = super().flag_overrides(flags)
        if flags.clip_model:
            model, _, pretrained = flags.clip_model.partition("@")
            out["clip"] = {"model": model, "pretrained": pretrained or None}
        return out


@dataclass(frozen=True)
class StoredEmbeddings:
    """Stands for the encoder in ``Frames.derived["clip_embeddings"]`` when the frames'
    embeddings were read from ``clip_embeddings`` (``--from-embeddings``): it matches the
    resident CLIP whose identity hashes to ``model_hash``."""

    model_hash: str

    @classmethod
    def of(cls, model: ClipModel) -> "StoredEmbeddings":
        return cls(stable_hash(model.identity()))


class ClipBasedScorer(Scorer):
    """A scorer with a CLIP model (declared as ``clip``; loaded by ``setup``, once per process)."""

    resources: ClassVar[Resources] = Resources(gpus=0.25, batch_size=32)

    def weights(self) -> dict[str, Weights]:
        cfg, device = self.config.clip, self.config.runtime.resolved_device()
        return {"clip": ClipWeights(cfg.model, cfg.pretrained or None, resolve_precision(cfg.precision, device),
                                    device)}

    @property
    def clip_model(self) -> ClipModel:
        return self.models["clip"]

    def encode_frames(self, clips: list[Frames | np.ndarray]) -> list[torch.Tensor]:
        """Per clip's RGB frames ``(T_i, H_i, W_i, 3)``, ``(T_i, D)`` unit embeddings; the
        frames of all clips (of many videos) go through the encoder together, in batches of
        ``runtime.batch_size``. Clips given as :class:`Frames` keep their embeddings, so the
        next scorer with the same resident CLIP over the same frames (EMScore and aesthetic
        both on ViT-B/32 at 1 frame per second) encodes nothing."""
        model = self.clip_model
        out: list[Optional[torch.Tensor]] = [None] * len(clips)
        todo = []
        for n, clip in enumerate(clips):
            kept = clip.derived.get("clip_embeddings") if isinstance(clip, Frames) else None
            if kept is not None and (kept[0] is model or kept[0] == StoredEmbeddings.of(model)):
                out[n] = kept[1]
            else:
                todo.append(n)
        if todo:
            pixels = [model.preprocess(clips[n].array if isinstance(clips[n], Frames) else clips[n]) for n in todo]
            embeddings = encode_pixels(model, torch.cat(pixels), self.config.runtime.batch_size)
            for n, e in zip(todo, embeddings.split([p.shape[0] for p in pixels])):
                out[n] = e
                if isinstance(clips[n], Frames):
                    clips[n].derived["clip_embeddings"] = (model, e)
        return out

    def text_similarities(self, clips: list[Frames], texts: list[str], flip: str = "none") -> list[torch.Tensor]:
        """Per clip, the cosine of each frame (and its flipped copies, after the originals)
        with the clip's text; each distinct text is encoded once, all frames in one batch."""
        distinct = list(dict.fromkeys(texts))
        text_emb = dict(zip(distinct, encode_texts(self.clip_model, distinct)))
        frames = self.encode_frames(clips if flip == "none" else [flip_frames(c.array, flip) for c in clips])
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
