"""RAFT optical flow (Teed and Deng 2020) through torchvision's ``raft_small`` / ``raft_large``
(data-juicer's ``video_motion_score_raft_filter`` uses the same models), from a local weights
file: nothing downloads.

==============  =========================================  ====================================
architecture    file                                       looked for
==============  =========================================  ====================================
``raft_small``  ``raft_small_C_T_V2-01064c6d.pth``         the ``raft_weights`` path, else
``raft_large``  ``raft_large_C_T_SKHT_V2-ff5fadd5.pth``    ``$VIDQA_MODELS_DIR/torchvision/``,
                                                           else torch's hub cache
                                                           (``$TORCH_HOME/hub/checkpoints/``)
==============  =========================================  ====================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from vidqa.errors import ScorerError
from vidqa.hashing import file_sha256
from vidqa.models import MODELS_DIR_ENV
from vidqa.models.download import WeightFile
from vidqa.models.resident import resident

RAFT_FILES = {
    "raft_small": "raft_small_C_T_V2-01064c6d.pth",
    "raft_large": "raft_large_C_T_SKHT_V2-ff5fadd5.pth",
}
RAFT_URL = "https://download.pytorch.org/models/{file}"
MODELS_SUBDIR = "torchvision"
FLOW_UPDATES = 12  # torchvision's default number of refinement steps
PAD_TO = 8  # RAFT works at 1/8 resolution


def _hub_checkpoints() -> Path:
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    return Path(torch_home) / "hub" / "checkpoints"


def raft_weights_file(arch: str, path: Optional[str] = None) -> Path:
    """The weights file of ``arch``: the path given, else the published file's name in the
    models folder or torch's hub cache. ScorerError naming every place looked in when absent."""
    name = RAFT_FILES[arch]
    candidates = [Path(path).expanduser()] if path else []
    if not path:
        if os.environ.get(MODELS_DIR_ENV):
            candidates.append(Path(os.environ[MODELS_DIR_ENV]) / MODELS_SUBDIR / name)
        candidates.append(_hub_checkpoints() / name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    url = RAFT_URL.format(file=name)
    raise ScorerError(
        f"{arch} weights not found. Looked for:\n  " + "\n  ".join(map(str, candidates))
        + f"\nTo provide them, on a machine with network download {url} (e.g. `curl -L -O '{url}'`, or "
        f"`vidqa models download --dir D` and set ${MODELS_DIR_ENV}=D) and pass its path as raft_weights, or put "
        f"it in ${MODELS_DIR_ENV}/{MODELS_SUBDIR}/{name}."
    )


@dataclass(frozen=True)
class RaftWeights:
    """The declaration the motion scorer makes for its RAFT flow."""

    arch: str
    path: Optional[str] = None
    device: str = "cpu"

    @property
    def what(self) -> str:
        return f"{self.arch} weights"

    def identity(self) -> dict[str, Any]:
        # The bytes, not the name: a renamed copy is the same model.
        file = raft_weights_file(self.arch, self.path)
        return {"arch": self.arch, "sha256": file_sha256(file)}

    def files(self, models_dir: Path) -> list[WeightFile]:
        name = RAFT_FILES[self.arch]
        return [WeightFile(f"{self.arch} weights", Path(models_dir) / MODELS_SUBDIR / name,
                           url=RAFT_URL.format(file=name))]

    def load(self) -> "RaftFlow":
        file = raft_weights_file(self.arch, self.path)
        return resident(("raft", self.arch, str(file.resolve()), self.device), lambda: RaftFlow(self, file))


class RaftFlow:
    """A RAFT model in eval mode; :meth:`pair_motion` gives each consecutive pair's mean flow magnitude."""

    def __init__(self, weights: RaftWeights, file: Path):
        import torch
        from torchvision.models import optical_flow

        model = getattr(optical_flow, weights.arch)(weights=None)
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception as exc:
            raise ScorerError(f"{weights.arch} weights {file}: not a {weights.arch} state dict ({exc})") from exc
        self.model = model.eval().to(weights.device)
        self.device = weights.device
        self._identity = {"arch": weights.arch, "sha256": file_sha256(file)}

    def identity(self) -> dict[str, Any]:
        return self._identity

    def flow(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """RAFT flow ``(N, H, W, 2)`` float32 from frames ``first[k]`` to ``second[k]`` (uint8
        RGB ``(N, H, W, 3)``): pixels scaled to [-1, 1] (torchvision's ``OpticalFlow`` preset),
        padded by edge replication to a multiple of 8 (RAFT's ``InputPadder``), the flow cropped back."""
        import torch
        import torch.nn.functional as F

        def tensor(frames: np.ndarray) -> torch.Tensor:
            x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).to(self.device, torch.float32)
            return x / 127.5 - 1.0

        a, b = tensor(first), tensor(second)
        h, w = a.shape[-2:]
        pad_h, pad_w = -h % PAD_TO, -w % PAD_TO
        pads = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
        a, b = F.pad(a, pads, mode="replicate"), F.pad(b, pads, mode="replicate")
        with torch.inference_mode():
            flow = self.model(a, b, num_flow_updates=FLOW_UPDATES)[-1]
        flow = flow[:, :, pads[2]:pads[2] + h, pads[0]:pads[0] + w]
        return flow.permute(0, 2, 3, 1).float().cpu().numpy()

    def pair_motion(self, frames: np.ndarray, batch: int = 8) -> np.ndarray:
        """Mean flow magnitude of each consecutive pair of ``frames`` ``(N, H, W, 3)``: ``(N-1,)`` float64."""
        out = np.zeros(max(len(frames) - 1, 0), dtype=np.float64)
        for start in range(0, len(out), batch):
            stop = min(start + batch, len(out))
            flow = self.flow(frames[start:stop], frames[start + 1:stop + 1]).astype(np.float64)
            out[start:stop] = np.hypot(flow[..., 0], flow[..., 1]).mean(axis=(1, 2))
        return out
