"""LAION aesthetic predictors: small heads on L2-normalised CLIP image embeddings.

Two published families, told apart by their state-dict keys and shapes:

- ``mlp``: the "improved aesthetic predictor" (``sac+logos+ava1-l14-linearMSE.pth``) on
  CLIP ViT-L/14 (OpenAI) embeddings: ``Linear(768, 1024) -> Dropout(0.2) -> Linear(1024, 128)
  -> Dropout(0.2) -> Linear(128, 64) -> Dropout(0.1) -> Linear(64, 16) -> Linear(16, 1)``,
  no activations, keys ``layers.{0,2,4,6,7}.{weight,bias}``.
- ``linear``: aesthetic predictor v1 (``sa_0_4_vit_l_14_linear.pth``,
  ``sa_0_4_vit_b_32_linear.pth``): ``Linear(D, 1)``, keys ``weight``, ``bias``.

Heads load strictly: a state dict under other names (DataFlow-MM's ``net.*``) is refused
instead of silently leaving random weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from vidqa.errors import ScorerError
from vidqa.hashing import file_sha256
from vidqa.models.download import WeightFile
from vidqa.models.resident import resident
from vidqa.models import MODELS_DIR_ENV

MLP_HIDDEN = (1024, 128, 64, 16)
MLP_DROPOUT = (0.2, 0.2, 0.1)
_MLP_KEYS = frozenset(f"layers.{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias"))
_LINEAR_KEYS = frozenset({"weight", "bias"})
# Where the published heads come from, for the "missing file" message.
KNOWN_HEADS = {
    "sac+logos+ava1-l14-linearMSE.pth": "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/sac+logos+ava1-l14-linearMSE.pth",
    "sa_0_4_vit_l_14_linear.pth": "https://github.com/LAION-AI/aesthetic-predictor/raw/main/sa_0_4_vit_l_14_linear.pth",
    "sa_0_4_vit_b_32_linear.pth": "https://github.com/LAION-AI/aesthetic-predictor/raw/main/sa_0_4_vit_b_32_linear.pth",
}
MODELS_SUBDIR = "laion-aesthetic"


class AestheticMLP(nn.Module):
    """The improved predictor's architecture; ``self.layers`` indices give the file's key names."""

    def __init__(self, embed_dim: int = 768):
        super().__init__()
        h1, h2, h3, h4 = MLP_HIDDEN
        d1, d2, d3 = MLP_DROPOUT
        self.layers = nn.Sequential(
            nn.Linear(embed_dim, h1), nn.Dropout(d1),
            nn.Linear(h1, h2), nn.Dropout(d2),
            nn.Linear(h2, h3), nn.Dropout(d3),
            nn.Linear(h3, h4),
            nn.Linear(h4, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@dataclass(frozen=True, eq=False)
class AestheticHead:
    """A loaded head (float64, eval mode, CPU) and what identifies it."""

    module: nn.Module
    kind: Literal["mlp", "linear"]
    embed_dim: int
    path: str
    sha256: str

    def identity(self) -> dict[str, Any]:
        return {"kind": self.kind, "file": os.path.basename(self.path), "sha256": self.sha256}


@dataclass(frozen=True)
class AestheticHeadWeights:
    """The declaration of a LAION head a scorer needs (see :class:`ClipWeights`)."""

    head: str

    @property
    def what(self) -> str:
        return f"aesthetic head {self.head}"

    @cached_property
    def _layout(self) -> tuple[Path, Literal["mlp", "linear"], int]:
        """The head's file, family and embedding width (its state dict is read once)."""
        file = _locate(Path(self.head), None)
        return (file, *_head_layout(_state_dict(file), file))

    def identity(self) -> dict[str, Any]:
        file, kind, _ = self._layout
        return {"kind": kind, "file": file.name, "sha256": file_sha256(file)}

    def embed_dim(self) -> int:
        return self._layout[2]

    def files(self, models_dir: Path) -> list[WeightFile]:
        return aesthetic_head_files(self.head, models_dir)

    def load(self) -> "AestheticHead":
        return load_aesthetic_head(self.head)


def load_aesthetic_head(path: str | os.PathLike, models_dir: str | os.PathLike | None = None) -> AestheticHead:
    """Load a LAION aesthetic head, detecting MLP vs linear from the state dict, strictly.

    ``path`` is a file, or the bare name of a published head (e.g.
    ``"sac+logos+ava1-l14-linearMSE.pth"``) looked up as
    ``<models_dir or $VIDQA_MODELS_DIR>/laion-aesthetic/<name>``. Tensors saved on a GPU
    are mapped to the CPU. Weights are kept in float64 (exact copies of the float32 file).

    Raises:
        ScorerError: the file is missing (the message says where to get it) or its keys or
            shapes are not one of the two known heads.
    """
    file = _locate(Path(path), models_dir)
    stat = file.stat()
    return resident(("aesthetic_head", str(file.resolve()), stat.st_size, stat.st_mtime_ns), lambda: _load(file))


def _locate(path: Path, models_dir) -> Path:
    if path.is_file():
        return path
    looked_for = [str(path)]
    models_dir = models_dir if models_dir is not None else os.environ.get(MODELS_DIR_ENV)
    if models_dir and path.parent == Path("."):
        candidate = Path(models_dir) / MODELS_SUBDIR / path.name
        looked_for.append(str(candidate))
        if candidate.is_file():
            return candidate
    url = KNOWN_HEADS.get(path.name)
    fetch = (
        f"on a machine with network download {url}\n(e.g. `curl -L -O '{url}'`)"
        if url
        else f"get the file (published heads: {', '.join(KNOWN_HEADS)})"
    )
    raise ScorerError(
        f"aesthetic head {path.name!r} not found. Looked for:\n  "
        + "\n  ".join(looked_for)
        + f"\nTo provide it, {fetch} and pass its path, or put it in "
        f"${MODELS_DIR_ENV}/{MODELS_SUBDIR}/{path.name}."
    )


def _state_dict(file: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ScorerError(f"aesthetic head {file}: not a readable torch state dict ({exc})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ScorerError(f"aesthetic head {file}: expected a state dict of tensors, got {type(state).__name__}")
    return state


def _head_layout(state: dict[str, torch.Tensor], file: Path) -> tuple[Literal["mlp", "linear"], int]:
    """Which of the two published heads a state dict is, and its embedding width."""
    keys = frozenset(state)
    if keys == _MLP_KEYS:
        return "mlp", int(state["layers.0.weight"].shape[1])
    if keys == _LINEAR_KEYS and state["weight"].ndim == 2 and state["weight"].shape[0] == 1:
        return "linear", int(state["weight"].shape[1])
    raise ScorerError(
        f"aesthetic head {file}: unknown state dict keys {sorted(keys)}; expected the improved "
        f"predictor's {sorted(_MLP_KEYS)} or the v1 linear head's ['bias', 'weight']"
    )


def _load(file: Path) -> AestheticHead:
    state = _state_dict(file)
    kind, embed_dim = _head_layout(state, file)
    module: nn.Module = AestheticMLP(embed_dim) if kind == "mlp" else nn.Linear(embed_dim, 1)
    module = module.to(torch.float64)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # shape mismatches
        raise ScorerError(f"aesthetic head {file}: {exc}") from exc
    module.eval().requires_grad_(False)
    return AestheticHead(module, kind, embed_dim, str(file), file_sha256(file))


@torch.inference_mode()
def aesthetic_scores(head: AestheticHead, image_embeddings: torch.Tensor) -> torch.Tensor:
    """Aesthetic score per image: ``head(e / ||e||)``, ``(N, D) -> (N,)`` float64.

    The embeddings must come from the CLIP the head was trained on (ViT-L/14 OpenAI for the
    MLP and ``sa_0_4_vit_l_14``; ViT-B/32 for ``sa_0_4_vit_b_32``); they are re-normalised
    here because the heads were fitted on unit vectors. About 1-10 for the MLP (5.5 fair,
    6.5 high); unbounded.
    """
    x = torch.as_tensor(image_embeddings).to(device="cpu", dtype=torch.float64)
    if x.ndim != 2 or x.shape[1] != head.embed_dim:
        raise ValueError(f"expected (N, {head.embed_dim}) embeddings for this head, got {tuple(x.shape)}")
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return head.module(x)[:, 0]


def aesthetic_head_files(head: str, models_dir: Path) -> list[WeightFile]:
    if os.path.exists(head) or head not in KNOWN_HEADS:
        return []
    return [WeightFile(f"aesthetic head {head}", models_dir / MODELS_SUBDIR / head, url=KNOWN_HEADS[head])]
