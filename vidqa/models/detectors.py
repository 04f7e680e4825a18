"""The feature detectors of the set-level metrics: the TorchScript files StyleGAN-V and
NVIDIA's stylegan2-ada publish, loaded offline and called exactly as their metric code calls
them (uint8 ``[0, 255]`` input, resizing done inside the model).

========================  =========================  =========================================
detector                  file                       call (input -> output)
========================  =========================  =========================================
``i3d_kinetics400``       ``i3d_torchscript.pt``     ``(B,3,T,H,W) uint8, rescale=True, resize=True,
                                                     return_features=True`` -> 400-d logits
``c3d_ucf101``            ``c3d_ucf101.pt``          ``(B,3,16,H,W) uint8`` -> 101 probabilities
``inception_v3_2015_12_05`` ``inception-2015-12-05.pt`` ``(B,3,H,W) uint8, return_features=True``
                                                     -> 2048-d pool3; ``no_output_bias=True`` ->
                                                     1008 probabilities (IS)
``vgg16``                 ``vgg16.pt``               ``(B,3,H,W) uint8, return_features=True`` -> 4096-d
========================  =========================  =========================================

A detector file is found, in order, at an explicit path (a file, or a folder holding the file),
in ``$VIDQA_DETECTORS_DIR``, in ``$VIDQA_MODELS_DIR/detectors``, and in ``<VIDQA_HOME>/detectors``.
Nothing is downloaded; a missing file raises :class:`DetectorMissing`, naming the file, the
metrics that need it, where it was looked for and where to download it. A detector's identity
is the SHA-256 of its file, recorded beside every value computed with it.
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import numpy as np
import torch

from vidqa.config import get_settings
from vidqa.models import MODELS_DIR_ENV
from vidqa.hashing import file_sha256
from vidqa.models.resident import resident

DETECTORS_DIR_ENV = "VIDQA_DETECTORS_DIR"
Output = Literal["features", "probs"]


class DetectorMissing(FileNotFoundError):
    """A detector file is not available locally."""


@dataclass(frozen=True)
class DetectorSpec:
    """What a detector file is and how its published metric code calls it."""

    name: str
    filename: str
    url: str
    origin: str
    temporal: bool  # True: clips (B, 3, T, H, W); False: images (B, 3, H, W)
    kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)  # per output kind
    dims: dict[str, int] = field(default_factory=dict)
    batch_frames: int = 256  # frames per forward pass on a GPU; CPU uses a quarter

    def call_kwargs(self, output: Output) -> dict[str, Any]:
        if output not in self.kwargs:
            raise ValueError(f"detector {self.name} gives no {output!r} output")
        return self.kwargs[output]


DETECTOR_SPECS: dict[str, DetectorSpec] = {
    spec.name: spec
    for spec in (
        DetectorSpec(
            "i3d_kinetics400", "i3d_torchscript.pt",
            "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",
            "StyleGAN-V (I3D, Kinetics-400)", temporal=True,
            kwargs={"features": {"rescale": True, "resize": True, "return_features": True}},
            dims={"features": 400},
        ),
        DetectorSpec(
            "c3d_ucf101", "c3d_ucf101.pt",
            "https://www.dropbox.com/s/jxpu7avzdc9n97q/c3d_ucf101.pt?dl=1",
            "StyleGAN-V (C3D, UCF-101, as MoCoGAN-HD)", temporal=True,
            kwargs={"probs": {}}, dims={"probs": 101},
        ),
        DetectorSpec(
            "inception_v3_2015_12_05", "inception-2015-12-05.pt",
            "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
            "NVIDIA stylegan2-ada metrics (Inception-v3, TF 2015-12-05 weights)", temporal=False,
            kwargs={"features": {"return_features": True}, "probs": {"no_output_bias": True}},
            dims={"features": 2048, "probs": 1008},
        ),
        DetectorSpec(
            "vgg16", "vgg16.pt",
            "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt",
            "NVIDIA stylegan2-ada metrics (VGG16, ILSVRC-2012)", temporal=False,
            kwargs={"features": {"return_features": True}}, dims={"features": 4096},
        ),
    )
}


def detector_search_dirs() -> list[Path]:
    """Folders searched for detector files, in order."""
    dirs = []
    for env, sub in ((DETECTORS_DIR_ENV, ""), (MODELS_DIR_ENV, "detectors")):
        if os.environ.get(env):
            dirs.append(Path(os.environ[env]).expanduser() / sub)
    dirs.append(get_settings().home / "detectors")
    return dirs


def _metrics_needing(name: str) -> list[str]:
    from vidqa.metrics.distribution import DETECTORS, SUPPORTED_METRICS, parse_metric_name

    return [m for m in SUPPORTED_METRICS if DETECTORS[parse_metric_name(m).kind] == name]


def find_detector_file(name: str, path: Optional[str | os.PathLike] = None) -> Path:
    """The local file of detector ``name``; :class:`DetectorMissing` says how to provide it."""
    spec = DETECTOR_SPECS[name]
    candidates: list[Path] = []
    if path:
        given = Path(path).expanduser()
        candidates.append(given / spec.filename if given.is_dir() else given)
    else:
        candidates.extend(d / spec.filename for d in detector_search_dirs())
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    first_dir = candidates[0].parent if not path else Path(path).expanduser()
    raise DetectorMissing(
        f"detector file {spec.filename} ({spec.origin}) is missing; the metrics "
        f"{', '.join(_metrics_needing(name))} need it. Looked in: "
        f"{', '.join(str(c) for c in candidates)}. Download it from {spec.url} (on a machine "
        f"with network access) into {first_dir}, or set ${DETECTORS_DIR_ENV} to the folder holding "
        f"it, or pass --detector-path."
    )


class Detector:
    """A loaded detector, resident on its device; call it with uint8 frames."""

    def __init__(self, spec: DetectorSpec, path: Path, device: Optional[str | torch.device] = None):
        self.spec = spec
        self.path = path
        self.sha256 = file_sha256(path)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        try:
            with warnings.catch_warnings():
                # TorchScript is how these detectors are published; its deprecation notice is noise here.
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:  # a truncated download or a file of another kind
            raise DetectorMissing(
                f"{path} is not a loadable TorchScript detector ({exc.__class__.__name__}: {exc}); "
                f"download {spec.filename} again from {spec.url}"
            ) from None
        self.module = module.eval().to(self.device)
        # TorchScript modules are not re-entrant across threads on one device.
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.spec.name

    def identity(self) -> dict[str, Any]:
        return {"detector": self.spec.name, "file": self.spec.filename, "sha256": self.sha256}

    @property
    def batch_frames(self) -> int:
        return self.spec.batch_frames if self.device.type == "cuda" else max(16, self.spec.batch_frames // 4)

    @torch.no_grad()
    def __call__(self, frames: np.ndarray | torch.Tensor, output: Output = "features") -> np.ndarray:
        """Rows for a batch: clips ``(B, T, H, W, 3)`` or images ``(B, H, W, 3)``, uint8 RGB.

        Reordered to the detector's ``(B, 3, T, H, W)`` / ``(B, 3, H, W)`` layout, sent as
        uint8, and returned as a float64 array ``(B, D)``."""
        x = torch.as_tensor(frames)
        if x.dtype != torch.uint8:
            raise TypeError(f"detector input must be uint8 [0, 255], got {x.dtype}")
        expected = 5 if self.spec.temporal else 4
        if x.ndim != expected or x.shape[-1] != 3:
            raise ValueError(f"{self.name} takes {'clips (B,T,H,W,3)' if self.spec.temporal else 'images (B,H,W,3)'}, "
                             f"got shape {tuple(x.shape)}")
        x = x.permute(0, 4, 1, 2, 3) if self.spec.temporal else x.permute(0, 3, 1, 2)
        x = x.contiguous().to(self.device)
        with self._lock:
            out = self.module(x, **self.spec.call_kwargs(output))
        out = out.detach().to("cpu", torch.float64).numpy()
        if out.ndim != 2 or out.shape[0] != x.shape[0]:
            raise RuntimeError(f"{self.name} returned shape {out.shape} for a batch of {x.shape[0]}")
        return out


def load_detector(name: str, path: Optional[str | os.PathLike] = None,
                  device: Optional[str | torch.device] = None) -> Detector:
    """The detector ``name`` (see :data:`DETECTOR_SPECS`) from ``path`` or the search folders,
    loaded once per process and file and kept resident."""
    if name not in DETECTOR_SPECS:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(DETECTOR_SPECS)}")
    file = find_detector_file(name, path).resolve()
    stat = file.stat()
    return resident(("detector", name, f"{file}:{stat.st_size}:{stat.st_mtime_ns}", str(device)),
                    lambda: Detector(DETECTOR_SPECS[name], file, device))


def detector_report(path: Optional[str | os.PathLike] = None) -> list[dict[str, Any]]:
    """For each detector: its file, the metrics needing it, and where it was found (or not)."""
    rows = []
    for name, spec in DETECTOR_SPECS.items():
        try:
            found: Optional[str] = str(find_detector_file(name, path))
        except DetectorMissing:
            found = None
        rows.append({"detector": name, "file": spec.filename, "metrics": _metrics_needing(name),
                     "found": found, "url": spec.url})
    return rows


__all__ = [
    "DETECTORS_DIR_ENV", "DETECTOR_SPECS", "Detector", "DetectorMissing", "DetectorSpec",
    "detector_report", "detector_search_dirs", "find_detector_file", "load_detector",
]
