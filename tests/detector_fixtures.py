"""Tiny random TorchScript stand-ins for the set-metric detectors, saved under the real file
names with the real call signatures (uint8 input checked, in-model rescale/resize), so the
whole path (file lookup, hashing, torch.jit.load, calling convention) runs offline.

Feature widths are smaller than the real ones (the real Inception gives 2048, VGG16 4096)
to keep matrix square roots fast; nothing in vidqa depends on the width.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidqa.models.detectors import DETECTOR_SPECS


def _check_uint8(x: Tensor) -> Tensor:
    assert x.dtype == torch.uint8, "detector input must be uint8"
    return x.to(torch.float32)


class TinyI3D(nn.Module):
    """(B, 3, T, H, W) uint8 -> 400 'logits'."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3 * 2 * 4 * 4, 400)

    def forward(self, x: Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False) -> Tensor:
        assert x.dim() == 5 and x.shape[1] == 3, "I3D takes (B, 3, T, H, W)"
        x = _check_uint8(x)
        if rescale:
            x = x / 127.5 - 1.0
        if resize:
            x = F.interpolate(x, size=[x.shape[2], 224, 224], mode="trilinear", align_corners=False)
        pooled = F.adaptive_avg_pool3d(x, [2, 4, 4]).flatten(1)
        features = torch.tanh(self.proj(pooled * 3.0)) * 4.0
        if return_features:
            return features
        return torch.softmax(features, dim=1)


class TinyC3D(nn.Module):
    """(B, 3, 16, H, W) uint8 -> 101 probabilities (resizes to 112 inside)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3 * 2 * 4 * 4, 101)

    def forward(self, x: Tensor) -> Tensor:
        assert x.dim() == 5 and x.shape[2] == 16, "C3D takes 16-frame clips (B, 3, 16, H, W)"
        x = _check_uint8(x)
        x = F.interpolate(x, size=[16, 112, 112], mode="trilinear", align_corners=False) / 255.0
        pooled = F.adaptive_avg_pool3d(x, [2, 4, 4]).flatten(1)
        return torch.softmax(self.proj(pooled * 20.0), dim=1)


class TinyInception(nn.Module):
    """(B, 3, H, W) uint8 -> 256 pool features, or 1008 probabilities without the output bias."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Linear(3 * 6 * 6, 256)
        self.output = nn.Linear(256, 1008)

    def forward(self, img: Tensor, return_features: bool = False, use_fp16: bool = False,
                no_output_bias: bool = False) -> Tensor:
        assert img.dim() == 4 and img.shape[1] == 3, "Inception takes (B, 3, H, W)"
        x = _check_uint8(img)
        x = F.interpolate(x, size=[299, 299], mode="bilinear", align_corners=False) / 127.5 - 1.0
        features = torch.relu(self.features(F.adaptive_avg_pool2d(x, [6, 6]).flatten(1) * 3.0))
        if return_features:
            return features
        logits = F.linear(features, self.output.weight) * 4.0
        if not no_output_bias:
            logits = logits + self.output.bias
        return torch.softmax(logits, dim=1)


class TinyVGG16(nn.Module):
    """(B, 3, H, W) uint8 -> 128 features (resizes to 224 inside)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3 * 7 * 7, 128)

    def forward(self, img: Tensor, resize_images: bool = True, return_lpips: bool = False,
                return_features: bool = False) -> Tensor:
        assert img.dim() == 4 and img.shape[1] == 3, "VGG16 takes (B, 3, H, W)"
        x = _check_uint8(img)
        x = F.interpolate(x, size=[224, 224], mode="area") / 255.0
        features = torch.tanh(self.proj(F.adaptive_avg_pool2d(x, [7, 7]).flatten(1) * 4.0))
        if return_lpips:
            return F.normalize(features, dim=1)
        return features


STAND_INS = {
    "i3d_kinetics400": TinyI3D,
    "c3d_ucf101": TinyC3D,
    "inception_v3_2015_12_05": TinyInception,
    "vgg16": TinyVGG16,
}


def write_tiny_detectors(folder: Path, seed: int = 0, only: tuple[str, ...] | None = None) -> Path:
    """Save the stand-ins under their real file names in ``folder``; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, cls in STAND_INS.items():
        if only and name not in only:
            continue
        torch.manual_seed(seed)
        module = torch.jit.script(cls().eval())
        module.save(str(folder / DETECTOR_SPECS[name].filename))
    return folder
