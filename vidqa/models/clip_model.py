"""CLIP through open_clip, offline: one factory, batched tensor preprocessing, encoders.

    clip = load_clip("ViT-B-32", "openai")               # weights from local files only
    frame_embs = encode_images(clip, frames_uint8)       # (N, D) float32, unit norm
    text = encode_text_tokens(clip, ["a dog runs"])      # per-token and global embeddings

Weights are never downloaded. ``load_clip`` looks in, in order: a ``VIDQA_MODELS_DIR``-style
folder, the Hugging Face hub cache (what ``hf download`` fills; ``HF_HUB_CACHE``/``HF_HOME``
are honoured) and open_clip's URL cache (``~/.cache/clip``). When nothing is found it raises
:class:`vidqa.errors.ScorerError` naming the files it looked for and the command that fetches
them on a machine with network.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import constants as hf_constants
from huggingface_hub import try_to_load_from_cache

# open_clip (and the torchvision it pulls in) is imported where it is used: every flow-run
# process imports this module, and one that scores no CLIP metric starts 2.5 s sooner.

from vidqa.errors import ScorerError
from vidqa.hashing import file_sha256, json_sha256
from vidqa.models import MODELS_DIR_ENV
from vidqa.models.download import WeightFile
from vidqa.models.resident import resident

PRECISIONS = ("fp32", "bf16", "fp16")
_LOW_PRECISION = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Random-init models (pretrained=None) are seeded so that a config always gives the same model:
# tests and config hashes can rely on it.
RANDOM_INIT_SEED = 0

# Hugging Face *transformers* CLIP repositories hold the OpenAI weights that open_clip publishes
# as these (architecture, tag) pairs; mapping them keeps one code path for both spellings.
TRANSFORMERS_CLIP_IDS = {
    "openai/clip-vit-base-patch32": ("ViT-B-32", "openai"),
    "openai/clip-vit-base-patch16": ("ViT-B-16", "openai"),
    "openai/clip-vit-large-patch14": ("ViT-L-14", "openai"),
    "openai/clip-vit-large-patch14-336": ("ViT-L-14-336", "openai"),
}
HF_HUB_PREFIX = "hf-hub:"
HUB_CONFIG_FILE = "open_clip_config.json"
# open_clip's weight file names on the Hub, preferred first (same order open_clip uses).
HUB_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


# --------------------------------------------------------------------------- preprocessing


@dataclass(frozen=True)
class FramePreprocess:
    """open_clip's inference preprocessing, batched: ``open_clip.image_transform(size,
    is_train=False, ...)`` applied to ``PIL.Image.fromarray(frame)``.

    1. resize -- ``shortest``: the shorter side to ``size`` and the longer one to
       ``int(size * long / short)`` (torchvision ``Resize(int)``); ``squash``: both sides to
       ``size``; PIL's antialiased bicubic (or bilinear);
    2. center crop ``size x size`` at ``(round((h - size) / 2), round((w - size) / 2))``;
    3. ``x / 255`` and ``(x - mean) / std`` per channel, in float32.

    Frames on the CPU are resized by PIL itself, the function the reference code calls, so
    the pixels are PIL's to the bit (and PIL's fixed-point resampler is faster on a CPU than
    torch's float one). Frames going to a device (``device="cuda"``) are resized there with
    ``interpolate(..., antialias=True)``, the same filter in float: rounded to uint8 after
    each pass in PIL's order (:func:`pil_resamples_vertically_first`), it differs from PIL by
    one level on about 0.02 % of the pixels, where PIL's fixed-point sum falls on the other
    side of a rounding boundary.
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"

    def __post_init__(self) -> None:
        if self.interpolation not in ("bicubic", "bilinear"):
            raise ValueError(f"unsupported interpolation {self.interpolation!r}")
        if self.resize_mode not in ("shortest", "squash"):
            raise ValueError(f"unsupported resize_mode {self.resize_mode!r}")

    def resized_shape(self, height: int, width: int) -> tuple[int, int]:
        """Shape after step 1 (before the crop)."""
        if self.resize_mode == "squash":
            return self.size, self.size
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(self.size * long / short)
        return (new_long, self.size) if width <= height else (self.size, new_long)

    def __call__(
        self,
        frames: np.ndarray | torch.Tensor,
        device: torch.device | str | None = None,
        resampler: str | None = None,
    ) -> torch.Tensor:
        """RGB uint8 frames ``(N, H, W, 3)`` -> normalised float32 ``(N, 3, size, size)`` on
        ``device``. ``resampler``: ``pil`` or ``tensor``; by default PIL for frames on the CPU
        and the tensor resampler for frames on (or going to) another device."""
        x = _as_uint8_nhwc(frames)
        if device is not None:
            x = x.to(device)  # move uint8, not float: 4x less to copy
        if resampler is None:
            resampler = "pil" if x.device.type == "cpu" else "tensor"
        if resampler not in ("pil", "tensor"):
            raise ValueError(f"unknown resampler {resampler!r}: pil or tensor")
        height, width = x.shape[1:3]
        out_h, out_w = self.resized_shape(height, width)
        top = int(round((out_h - self.size) / 2.0))
        left = int(round((out_w - self.size) / 2.0))
        if resampler == "pil":
            x = self._resize_pil(x.cpu(), out_h, out_w).to(x.device)
        else:
            x = self._resize_tensor(x, out_h, out_w)
        x = x[..., top : top + self.size, left : left + self.size].float() / 255.0
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return ((x - mean) / std).contiguous()

    def _resize_pil(self, x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
        """``(N, H, W, 3)`` uint8 -> ``(N, 3, out_h, out_w)`` uint8, each frame by PIL."""
        from PIL import Image

        if x.shape[1:3] == (out_h, out_w):
            return x.permute(0, 3, 1, 2)
        resample = Image.Resampling.BICUBIC if self.interpolation == "bicubic" else Image.Resampling.BILINEAR
        frames = x.numpy()
        out = np.empty((len(frames), out_h, out_w, 3), dtype=np.uint8)
        for i, frame in enumerate(frames):
            out[i] = np.asarray(Image.fromarray(frame).resize((out_w, out_h), resample))
        return torch.from_numpy(out).permute(0, 3, 1, 2)

    def _resize_tensor(self, x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2).float()
        height, width = x.shape[-2:]
        passes = [(out_h, width), (out_h, out_w)] if pil_resamples_vertically_first(height, width, out_h, out_w) \
            else [(height, out_w), (out_h, out_w)]
        for size in passes:
            if size != tuple(x.shape[-2:]):
                x = F.interpolate(x, size=size, mode=self.interpolation, antialias=True, align_corners=False)
                x = x.round_().clamp_(0.0, 255.0)
        return x


def pil_resamples_vertically_first(height: int, width: int, out_h: int, out_w: int) -> bool:
    """The order of Pillow's two resampling passes (``ImagingResampleInner``, Pillow 13).

    Pillow 13 runs the vertical pass first when the height shrinks by more than twice as many
    rows as the width loses columns (``H - h > 0 and H - h > 2 (W - w)``), e.g. a portrait
    1280x544 frame to 527x224; older Pillow always went horizontal first. Each pass rounds to
    uint8, so the order moves up to 2 levels on about 5 % of the pixels of such frames: the
    order is PIL's current one so that frames from rotated (portrait) videos match it too.
    """
    shrink_rows, shrink_cols = height - out_h, width - out_w
    return shrink_rows > 0 and shrink_rows > 2 * shrink_cols


def _as_uint8_nhwc(frames: np.ndarray | torch.Tensor | Sequence[np.ndarray]) -> torch.Tensor:
    if isinstance(frames, torch.Tensor):
        x = frames
    else:
        if not isinstance(frames, np.ndarray):
            frames = np.stack([np.asarray(f) for f in frames])
        x = torch.from_numpy(np.ascontiguousarray(frames))
    if x.ndim == 3:
        x = x[None]
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected RGB uint8 frames (N, H, W, 3), got {tuple(x.shape)} {x.dtype}")
    return x


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True, eq=False)
class ClipModel:
    """A ready open_clip model: eval mode, on ``device``, with its preprocessing and tokenizer.

    ``name``/``pretrained``/``weights_sha256``/``config_sha256`` identify what produced an
    embedding; :meth:`identity` is the dict to hash into a scorer's configuration.
    """

    model: torch.nn.Module
    preprocess: FramePreprocess
    tokenizer: Callable[..., torch.Tensor]
    embed_dim: int
    name: str
    pretrained: str | None
    weights_path: str | None
    weights_sha256: str | None
    config_sha256: str
    device: torch.device
    precision: str

    @property
    def weights_id(self) -> str:
        return _weights_id(self.weights_sha256)

    @property
    def input_dtype(self) -> torch.dtype:
        return _LOW_PRECISION.get(self.precision, torch.float32)

    def identity(self) -> dict[str, Any]:
        """What determines this model's outputs. The device is left out (it changes only
        rounding) and so is a checkpoint's path (its sha256 is in ``weights``)."""
        return _identity(self.name, self.pretrained, self.weights_sha256, self.config_sha256, self.precision,
                         self.preprocess)


def _weights_id(sha256: str | None) -> str:
    return f"sha256:{sha256}" if sha256 else f"random-init:seed={RANDOM_INIT_SEED}"


def _identity(name: str, pretrained: str | None, weights_sha256: str | None, config_sha256: str, precision: str,
              preprocess: "FramePreprocess") -> dict[str, Any]:
    """A CLIP's identity, the same dict whether it is named before loading or after."""
    local_file = pretrained is not None and os.path.isabs(pretrained)
    return {
        "name": name,
        "pretrained": "local" if local_file else pretrained,
        "weights": _weights_id(weights_sha256),
        "config_sha256": config_sha256,
        "precision": precision,
        "preprocess": asdict(preprocess),
    }


@dataclass(frozen=True)
class _Source:
    """What to hand to open_clip: a config (name or ``local-dir:``) and a checkpoint file."""

    model_name: str
    checkpoint: str | None
    pretrained: str | None  # normalised, for identity
    quick_gelu: bool = False
    preprocess: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ClipWeights:
    """The declaration of a CLIP a scorer needs: naming it (``identity``) resolves and hashes
    its local files without building the model; ``load`` builds it, resident in the process."""

    model: str
    pretrained: str | None
    precision: str = "fp32"
    device: str = "cpu"

    @property
    def what(self) -> str:
        return f"CLIP {self.model} (pretrained={self.pretrained!r})"

    @cached_property
    def description(self) -> "_Description":
        """The CLIP as named before it is built (its files resolved and hashed once)."""
        name, pretrained = canonical_clip_id(self.model, self.pretrained)
        source = _resolve(name, pretrained, None, os.environ.get(MODELS_DIR_ENV))
        return _describe(name, source, self.precision)

    def identity(self) -> dict[str, Any]:
        """What ``load().identity()`` will be: name, weights hash, config hash, precision and
        preprocessing. Raises ScorerError when the weights are not here (saying how to get them)."""
        return self.description.identity()

    def embed_dim(self) -> int:
        return int(self.description.config["embed_dim"])

    def files(self, models_dir: Path) -> list[WeightFile]:
        return clip_weight_files(self.model, self.pretrained, models_dir)

    def load(self) -> "ClipModel":
        return load_clip(self.model, self.pretrained, device=self.device, precision=self.precision)


@dataclass(frozen=True)
class _Description:
    """A CLIP as named before it is built: everything in its identity."""

    name: str
    pretrained: str | None
    weights_path: str | None
    weights_sha256: str | None
    config: dict[str, Any]
    preprocess: "FramePreprocess"
    precision: str

    def identity(self) -> dict[str, Any]:
        return _identity(self.name, self.pretrained, self.weights_sha256, json_sha256(self.config, spaced=True),
                         self.precision, self.preprocess)


def _describe(name: str, source: "_Source", precision: str) -> _Description:
    """Name, weights and preprocessing of a resolved CLIP, as open_clip will build it: its
    defaults, then a local config's ``preprocess_cfg``, the tower's image size, and the tag's
    settings (handed to open_clip as ``force_preprocess_cfg``)."""
    from open_clip.factory import _find_checkpoint_in_dir
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    config = _model_config(source)
    preprocess = asdict(PreprocessCfg())
    weights_path = source.checkpoint
    if source.model_name.startswith("local-dir:"):
        folder = Path(source.model_name[len("local-dir:") :])
        raw = json.loads((folder / HUB_CONFIG_FILE).read_text())
        preprocess = merge_preprocess_dict(preprocess, raw.get("preprocess_cfg", {}))
        weights_path = weights_path or _find_checkpoint_in_dir(folder)
    preprocess["size"] = config.get("vision_cfg", {}).get("image_size", preprocess["size"])
    preprocess = merge_preprocess_dict(preprocess, source.preprocess or {})
    return _Description(
        name=name if not name.endswith(".json") else Path(name).stem,
        pretrained=source.pretrained,
        weights_path=weights_path,
        weights_sha256=file_sha256(weights_path) if weights_path else None,
        config=config,
        preprocess=_frame_preprocess(name, preprocess),
        precision=precision,
    )


def load_clip(
    name: str,
    pretrained: str | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    cache_dir: str | os.PathLike | None = None,
    models_dir: str | os.PathLike | None = None,
) -> ClipModel:
    """Build an open_clip model with its preprocessing and tokenizer, without network access.

    Args:
        name: an open_clip model name (``"ViT-B-32"``, ``"ViT-L-14"``; OpenAI's ``"ViT-B/32"``
            spelling is accepted), the path of an open_clip model config ``.json`` (registered
            under its file stem), or ``"hf-hub:org/repo"`` of an open_clip Hub repository.
            The Hugging Face transformers ids ``"openai/clip-vit-base-patch32"`` (also ``-base-
            patch16``, ``-large-patch14``, ``-large-patch14-336``) are mapped to the open_clip
            architecture with the ``openai`` tag: the same OpenAI weights, loaded through
            open_clip (so outputs equal ``open_clip.create_model("ViT-B-32-quickgelu",
            "openai")``, OpenAI's original model, up to float rounding against transformers'
            ``CLIPModel``).
        pretrained: ``None`` for a random init (seeded with ``RANDOM_INIT_SEED``), an open_clip
            tag (``"openai"``), a local checkpoint file, a local folder holding
            ``open_clip_config.json`` and weights, ``"hf-hub:org/repo"``, or one of the
            transformers ids above.
        device, precision: where the model lives; ``"fp32"``, ``"bf16"`` or ``"fp16"`` weights.
        cache_dir: replaces both the Hugging Face hub cache and ``~/.cache/clip`` when given
            (as open_clip's own ``cache_dir``).
        models_dir: a local folder (default ``$VIDQA_MODELS_DIR``) laid out as
            ``open_clip/<name>/<tag>/open_clip_model.safetensors`` for tags and
            ``hf-hub/<org>/<repo>/`` for Hub repositories.

    Tags whose weights were trained with QuickGELU (all ``openai`` ones) get QuickGELU even
    under the plain architecture name; open_clip itself only warns about that mismatch.

    One model is kept per ``(name, pretrained, device, precision)`` for the whole process.

    Raises:
        ScorerError: unknown name/tag, missing weights (the message names the files looked
            for and how to provide them), or a checkpoint that does not fit the architecture.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ScorerError(f"CLIP model {name!r}: device {device} requested but CUDA is not available")
    name, pretrained = canonical_clip_id(name, pretrained)

    def build() -> ClipModel:
        source = _resolve(name, pretrained, cache_dir, models_dir if models_dir is not None
                          else os.environ.get(MODELS_DIR_ENV))
        return _build(name, source, device, precision)

    return resident(("clip", name, pretrained, str(device), precision), build)


def canonical_clip_id(name: str, pretrained: str | None) -> tuple[str, str | None]:
    """Normalise the accepted spellings to ``(open_clip name or config path, pretrained)``."""
    hub_name = _strip_hub(name)
    if hub_name in TRANSFORMERS_CLIP_IDS:
        arch, tag = TRANSFORMERS_CLIP_IDS[hub_name]
        if pretrained not in (None, tag, name, hub_name):
            raise ScorerError(f"{name!r} names the {tag!r} weights; pretrained={pretrained!r} contradicts it")
        return arch, tag
    if name.startswith(HF_HUB_PREFIX):
        if pretrained not in (None, name):
            raise ScorerError(f"{name!r} names its own weights; pretrained={pretrained!r} contradicts it")
        return name, name
    if name.endswith(".json"):
        name = str(Path(name).expanduser().resolve())
    else:
        name = name.replace("/", "-")
    if pretrained is None:
        return name, None
    if _strip_hub(pretrained) in TRANSFORMERS_CLIP_IDS:
        arch, tag = TRANSFORMERS_CLIP_IDS[_strip_hub(pretrained)]
        if name != arch and name != f"{arch}-quickgelu":
            raise ScorerError(f"pretrained={pretrained!r} holds {arch} weights, not {name}")
        return name, tag
    if not pretrained.startswith(HF_HUB_PREFIX) and Path(pretrained).expanduser().exists():
        return name, str(Path(pretrained).expanduser().resolve())
    return name, pretrained


def _strip_hub(s: str) -> str:
    return s[len(HF_HUB_PREFIX) :] if s.startswith(HF_HUB_PREFIX) else s


# --------------------------------------------------------------------------- weight resolution


def _resolve(name: str, pretrained: str | None, cache_dir, models_dir) -> _Source:
    import open_clip
    from open_clip.factory import _find_checkpoint_in_dir
    from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model
    if pretrained is not None and pretrained.startswith(HF_HUB_PREFIX):
        return _resolve_hub_repo(pretrained[len(HF_HUB_PREFIX) :], cache_dir, models_dir)
    config_name = _register_config_file(Path(name)) if name.endswith(".json") else name
    if open_clip.get_model_config(config_name) is None:
        raise ScorerError(
            f"unknown CLIP model {name!r}: not an open_clip model name (see open_clip.list_models()), "
            "a model config .json file, or an hf-hub: id"
        )
    if pretrained is None:
        return _Source(config_name, None, None)
    path = Path(pretrained)
    if path.is_file():
        return _Source(config_name, str(path), str(path))
    if path.is_dir():
        if (path / HUB_CONFIG_FILE).is_file():
            return _Source(f"local-dir:{path}", None, str(path))
        checkpoint = _find_checkpoint_in_dir(path)
        if checkpoint is None:
            raise ScorerError(f"CLIP weights for {name}: folder {path} holds no .safetensors/.bin/.pth file")
        return _Source(config_name, checkpoint, str(path))
    tag_cfg = get_pretrained_cfg(config_name, pretrained)
    if tag_cfg:
        return _resolve_tag(config_name, pretrained.lower().replace("-", "_"), tag_cfg, cache_dir, models_dir)
    if os.sep in pretrained or path.suffix in (".pt", ".pth", ".bin", ".safetensors"):
        raise ScorerError(f"CLIP checkpoint for {name} not found: {path.resolve()}")
    raise ScorerError(
        f"pretrained={pretrained!r} is not an open_clip tag for {config_name} "
        f"(known: {', '.join(list_pretrained_tags_by_model(config_name)) or 'none'}), "
        "an existing checkpoint file or folder, or an hf-hub: id"
    )


def _resolve_tag(name: str, tag: str, cfg: dict[str, Any], cache_dir, models_dir) -> _Source:
    # open_clip's "org/repo/" means the default file name, "org/repo/file" that file.
    hub_repo, hub_file = os.path.split(cfg["hf_hub"]) if cfg.get("hf_hub") else ("", "")
    hub_files = _hub_weight_candidates(hub_file)
    url = cfg.get("url", "")
    looked_for: list[str] = []
    found: str | None = None

    if models_dir:
        folder = Path(models_dir) / "open_clip" / name / tag
        file_names = list(dict.fromkeys([*hub_files, *HUB_WEIGHT_FILES, *([os.path.basename(url)] if url else [])]))
        for file_name in file_names:
            looked_for.append(str(folder / file_name))
            if found is None and (folder / file_name).is_file():
                found = str(folder / file_name)
    if found is None and hub_repo:
        for file_name in hub_files:
            looked_for.append(str(_hub_cache_path(hub_repo, file_name, cache_dir)))
            cached = try_to_load_from_cache(hub_repo, file_name, cache_dir=cache_dir)
            if isinstance(cached, str) and os.path.isfile(cached):
                found = cached
                break
    if found is None and url:
        target = Path(cache_dir or os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        looked_for.append(str(target))
        if target.is_file():
            found = str(target)

    if found is None:
        raise ScorerError(_missing_tag_message(name, tag, hub_repo, hub_file, url, looked_for, models_dir))
    preprocess = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}
    return _Source(name, found, tag, quick_gelu=bool(cfg.get("quick_gelu", False)), preprocess=preprocess)


def _resolve_hub_repo(repo: str, cache_dir, models_dir) -> _Source:
    from open_clip.factory import _find_checkpoint_in_dir
    looked_for: list[str] = []
    if models_dir:
        folder = Path(models_dir) / "hf-hub" / repo
        looked_for.append(str(folder / HUB_CONFIG_FILE))
        if (folder / HUB_CONFIG_FILE).is_file() and _find_checkpoint_in_dir(folder):
            return _Source(f"local-dir:{folder}", None, f"{HF_HUB_PREFIX}{repo}")
    looked_for.append(str(_hub_cache_path(repo, HUB_CONFIG_FILE, cache_dir)))
    config = try_to_load_from_cache(repo, HUB_CONFIG_FILE, cache_dir=cache_dir)
    if isinstance(config, str):
        snapshot = Path(config).parent
        looked_for.extend(str(snapshot / f) for f in HUB_WEIGHT_FILES)
        if any((snapshot / f).is_file() for f in HUB_WEIGHT_FILES):
            return _Source(f"local-dir:{snapshot}", None, f"{HF_HUB_PREFIX}{repo}")
    target = f"{models_dir or '$' + MODELS_DIR_ENV}/hf-hub/{repo}"
    raise ScorerError(
        f"CLIP weights for hf-hub:{repo} are not available offline. Looked for:\n  "
        + "\n  ".join(looked_for)
        + "\nTo provide them, on a machine with network run\n"
        f"  hf download {repo} --include 'open_clip_*' --local-dir {target}\n"
        f"copy that folder here and set {MODELS_DIR_ENV} to the folder above 'hf-hub' "
        "(or pass the folder itself as pretrained=...)."
    )


def _hub_weight_candidates(hub_file: str) -> list[str]:
    """The file names open_clip would download for a tag, safetensors first."""
    if not hub_file:
        return list(HUB_WEIGHT_FILES)
    stem, ext = os.path.splitext(hub_file)
    return [f"{stem}.safetensors", hub_file] if ext in (".bin", ".pth") else [hub_file]


def _hub_cache_path(repo: str, file_name: str, cache_dir) -> Path:
    root = Path(cache_dir) if cache_dir else Path(hf_constants.HF_HUB_CACHE)
    return root / f"models--{repo.replace('/', '--')}" / "snapshots" / "<revision>" / file_name


def _missing_tag_message(name, tag, hub_repo, hub_file, url, looked_for, models_dir) -> str:
    target = f"{models_dir or '$' + MODELS_DIR_ENV}/open_clip/{name}/{tag}"
    if hub_repo:
        what = hub_file or "--include 'open_clip_*'"
        fetch = f"  hf download {hub_repo} {what} --local-dir {target}"
    else:
        fetch = f"  mkdir -p {target} && curl -L -o {target}/{os.path.basename(url)} {url}"
    return (
        f"CLIP weights for {name} (pretrained={tag!r}) are not available offline. Looked for:\n  "
        + "\n  ".join(looked_for)
        + "\nTo provide them, on a machine with network run\n"
        + fetch
        + f"\n(or `vidqa models download --dir DIR` for every configured model), copy that folder here "
        f"and set {MODELS_DIR_ENV} to the folder above 'open_clip' "
        "(or pass the weight file itself as pretrained=/path/to/file)."
    )


def _register_config_file(path: Path) -> str:
    """Make an open_clip model config file loadable under its stem (open_clip's registry)."""
    import open_clip
    if not path.is_file():
        raise ScorerError(f"CLIP model config not found: {path}")
    config = json.loads(path.read_text())
    if not all(k in config for k in ("embed_dim", "vision_cfg", "text_cfg")):
        raise ScorerError(f"{path} is not an open_clip model config (needs embed_dim, vision_cfg, text_cfg)")
    registered = open_clip.get_model_config(path.stem)
    if registered is None:
        open_clip.add_model_config(path)
    elif registered != config:
        # The registry is keyed by stem: a second, different config would silently replace it.
        raise ScorerError(f"a different CLIP config is already registered as {path.stem!r}; rename {path}")
    return path.stem


# --------------------------------------------------------------------------- building


def _build(name: str, source: _Source, device: torch.device, precision: str) -> ClipModel:
    import open_clip
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            model = open_clip.create_model(
                source.model_name,
                pretrained=source.checkpoint,
                precision=precision,
                device=device,
                force_quick_gelu=source.quick_gelu,
                force_preprocess_cfg=source.preprocess or None,
                # Base tower weights would be fetched from the Hub; we load whole checkpoints.
                pretrained_image=False,
                pretrained_text=False,
                require_pretrained=source.pretrained is not None,
            )
        tokenizer = open_clip.get_tokenizer(source.model_name)
    except Exception as exc:  # open_clip reports mismatches as RuntimeError/ValueError/KeyError
        raise ScorerError(f"could not build CLIP model {name} (pretrained={source.pretrained!r}): {exc}") from exc
    model.eval().requires_grad_(False)

    described = _describe(name, source, precision)
    preprocess = _frame_preprocess(name, model.visual.preprocess_cfg)
    if preprocess != described.preprocess:
        # Scores were named (config hash) with the described preprocessing before the model
        # existed; a model that preprocesses otherwise would file its scores under a wrong name.
        raise ScorerError(f"CLIP model {name}: open_clip built it with preprocessing {preprocess}, not the "
                          f"{described.preprocess} vidqa derived from its configuration")
    return ClipModel(
        model=model,
        preprocess=preprocess,
        tokenizer=tokenizer,
        embed_dim=int(described.config["embed_dim"]),
        name=described.name,
        pretrained=described.pretrained,
        weights_path=described.weights_path,
        weights_sha256=described.weights_sha256,
        config_sha256=json_sha256(described.config, spaced=True),
        device=device,
        precision=precision,
    )


def _model_config(source: _Source) -> dict[str, Any]:
    import open_clip
    if source.model_name.startswith("local-dir:"):
        raw = json.loads((Path(source.model_name[len("local-dir:") :]) / HUB_CONFIG_FILE).read_text())
        config = raw.get("model_cfg", raw)
    else:
        config = open_clip.get_model_config(source.model_name)
    if source.quick_gelu:
        config = {**config, "quick_gelu": True}
    return config


def _frame_preprocess(name: str, cfg: dict[str, Any]) -> FramePreprocess:
    size = cfg["size"]
    if isinstance(size, (tuple, list)):
        if size[0] != size[1]:
            raise ScorerError(f"CLIP model {name}: non-square input size {size} is not supported")
        size = size[0]
    interpolation = "bilinear" if cfg.get("interpolation") == "bilinear" else "bicubic"
    resize_mode = cfg.get("resize_mode", "shortest")
    if resize_mode not in ("shortest", "squash"):
        raise ScorerError(f"CLIP model {name}: resize_mode {resize_mode!r} is not supported")
    return FramePreprocess(
        size=int(size),
        mean=tuple(float(v) for v in cfg["mean"]),
        std=tuple(float(v) for v in cfg["std"]),
        interpolation=interpolation,
        resize_mode=resize_mode,
    )


# --------------------------------------------------------------------------- encoders


def _autocast(clip: ClipModel):
    if clip.device.type == "cuda" and clip.precision in _LOW_PRECISION:
        return torch.autocast("cuda", dtype=_LOW_PRECISION[clip.precision])
    return contextlib.nullcontext()


@torch.inference_mode()
def encode_images(
    clip: ClipModel, frames_uint8: np.ndarray | torch.Tensor | Sequence[np.ndarray], batch_size: int = 64
) -> torch.Tensor:
    """CLIP image embeddings of RGB uint8 frames ``(N, H, W, 3)``: ``(N, D)`` float32 on CPU,
    each L2-normalised (``e / ||e||``, computed in float32 whatever the model precision)."""
    n = len(frames_uint8)
    if n == 0:
        return torch.empty((0, clip.embed_dim), dtype=torch.float32)
    out = []
    for start in range(0, n, batch_size):
        pixels = clip.preprocess(frames_uint8[start : start + batch_size], device=clip.device)
        out.append(encode_pixels(clip, pixels, batch_size))
    return torch.cat(out)


@torch.inference_mode()
def encode_pixels(clip: ClipModel, pixels: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Embeddings of already preprocessed ``(N, 3, S, S)`` pixels (frames of several videos,
    of different sizes, preprocessed one video at a time and concatenated), L2-normalised
    float32 on CPU."""
    out = []
    for chunk in pixels.split(batch_size):
        with _autocast(clip):
            features = clip.model.encode_image(chunk.to(clip.device, clip.input_dtype))
        out.append(F.normalize(features.float(), dim=-1).cpu())
    return torch.cat(out) if out else torch.empty((0, clip.embed_dim), dtype=torch.float32)


@torch.inference_mode()
def encode_texts(clip: ClipModel, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Global CLIP text embeddings ``(B, D)`` float32 on CPU, L2-normalised."""
    texts = list(texts)
    if not texts:
        return torch.empty((0, clip.embed_dim), dtype=torch.float32)
    out = []
    for start in range(0, len(texts), batch_size):
        ids = clip.tokenizer(texts[start : start + batch_size]).to(clip.device)
        with _autocast(clip):
            features = clip.model.encode_text(ids)
        out.append(F.normalize(features.float(), dim=-1).cpu())
    return torch.cat(out)


class TextTokenEmbeddings(NamedTuple):
    """Per-token CLIP text embeddings (all float32 on CPU).

    token_embeddings: ``(B, C, D)``, every position's final state after ``ln_final`` projected
        by ``text_projection``, each L2-normalised (positions past EOS are meaningless: mask them).
    global_embeddings: ``(B, D)``, ``normalize(model.encode_text(ids))`` -- the EOS position.
    mask: ``(B, C)`` bool, True from SOS up to and including EOS.
    token_ids: ``(B, C)`` int64 tokenizer output.
    """

    token_embeddings: torch.Tensor
    global_embeddings: torch.Tensor
    mask: torch.Tensor
    token_ids: torch.Tensor


@torch.inference_mode()
def encode_text_tokens(clip: ClipModel, texts: Sequence[str], batch_size: int = 256) -> TextTokenEmbeddings:
    """Token-level and global text embeddings, as EMScore needs them.

    Runs open_clip's ``CLIP.encode_text`` step by step (token + positional embedding,
    transformer with the causal mask, ``ln_final``) and keeps every position: token ``i`` is
    ``normalize(ln_final(h)_i @ text_projection)``. The global embedding pools the EOS
    position exactly as ``encode_text`` does (``text_global_pool``: argmax token id for the
    OpenAI tokenizer, whose EOS has the largest id) and then projects, so it equals
    ``normalize(model.encode_text(ids))``.
    """
    import open_clip
    from open_clip.transformer import text_global_pool
    model = clip.model
    if not isinstance(model, open_clip.CLIP) or model.text_pool_type not in ("argmax", "eos"):
        raise ScorerError(
            f"CLIP model {clip.name}: token embeddings need open_clip's built-in text transformer "
            "with EOS pooling"
        )
    texts = list(texts)
    token_ids = clip.tokenizer(texts) if texts else torch.zeros((0, model.context_length), dtype=torch.long)
    tokens, pooled = [], []
    for start in range(0, len(texts), batch_size):
        ids = token_ids[start : start + batch_size].to(clip.device)
        with _autocast(clip):
            states = _final_text_states(model, ids)
            pooled_states = text_global_pool(states, ids, model.text_pool_type, eos_token_id=model.text_eos_id)
            pooled.append(F.normalize(_project_text(model, pooled_states).float(), dim=-1).cpu())
            tokens.append(F.normalize(_project_text(model, states).float(), dim=-1).cpu())
    dim = clip.embed_dim
    token_embeddings = torch.cat(tokens) if tokens else torch.empty((0, model.context_length, dim))
    global_embeddings = torch.cat(pooled) if pooled else torch.empty((0, dim))
    eos = _eos_positions(model, token_ids)
    mask = torch.arange(token_ids.shape[1])[None, :] <= eos[:, None]
    return TextTokenEmbeddings(token_embeddings, global_embeddings, mask, token_ids)


def _final_text_states(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    # Same statements as open_clip.model.CLIP.encode_text up to ln_final.
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(ids).to(cast_dtype)
    x = x + model.positional_embedding.to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask)
    return model.ln_final(x)


def _project_text(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    if model.text_projection is None:
        return x
    if isinstance(model.text_projection, torch.nn.Linear):
        return model.text_projection(x)
    return x @ model.text_projection


def _eos_positions(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    if model.text_pool_type == "argmax":
        return ids.argmax(dim=-1)
    return (ids == model.text_eos_id).int().argmax(dim=-1)


def text_token_ids(clip: ClipModel, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text from SOS to EOS inclusive (no padding): the documents of an
    EMScore IDF corpus."""
    texts = list(texts)
    if not texts:
        return []
    ids = clip.tokenizer(texts)
    eos = _eos_positions(clip.model, ids)
    return [row[: int(e) + 1].tolist() for row, e in zip(ids, eos)]


def text_padding(clip: ClipModel) -> tuple[int, int]:
    """``(pad_id, context_length)`` of the model's tokenizer: what its rows are padded with,
    and to what length (open_clip's SimpleTokenizer: 0 and 77)."""
    row = clip.tokenizer(["a"])[0]
    return int(row[-1]), int(row.shape[0])


def clip_weight_files(name: str, pretrained: str | None, models_dir: Path) -> list[WeightFile]:
    """What ``load_clip(name, pretrained)`` needs; nothing for random init or local files."""
    name, pretrained = canonical_clip_id(name, pretrained)
    if pretrained is None or os.path.exists(pretrained):
        return []
    if pretrained.startswith(HF_HUB_PREFIX):
        repo = pretrained[len(HF_HUB_PREFIX):]
        return [WeightFile(f"CLIP {repo}", models_dir / "hf-hub" / repo, repo=repo)]
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg

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
