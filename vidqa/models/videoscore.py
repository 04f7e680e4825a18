"""VideoScore models (TIGER-Lab): a vision-language backbone with a regression head that
reads a video and its prompt and gives five scores, trained on human labels 1.0-4.0.

``load_videoscore(model)`` turns a Hub id (``TIGER-Lab/VideoScore``, ``-v1.1``,
``-Qwen2-VL``) or a local checkpoint folder into a ready model with its processor, offline.

The head is written here instead of importing the third-party ``mantis`` package, which
pins old transformers. As in ``mantis``:

    logits = score(h[b, last_b])    score = Linear(hidden, 5) (with bias)

where ``h`` is the backbone's last hidden state and ``last_b`` the last non-padding token
of sequence ``b`` (taken from the attention mask, so left or right padding both work).
Checkpoints are loaded strictly: a missing head (a base model), a missing backbone tensor
or a tensor the architecture does not have is an error, never a random initialisation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import numpy as np
import torch
from torch import nn

from vidqa.errors import ScorerError
from vidqa.models import resolve_precision, torch_dtype
from vidqa.models.download import WeightFile
from vidqa.models.hub import folder_weights_id, hf_model_files, resolve_hf_model
from vidqa.models.resident import resident

ASPECTS = ("visual_quality", "temporal_consistency", "dynamic_degree", "text_to_video_alignment",
           "factual_consistency")

# The model card's regression prompt, byte for byte (blank lines and the space after
# "sub-score," included): the head was trained on exactly this text.
REGRESSION_QUERY_PROMPT = """
Suppose you are an expert in judging and evaluating the quality of AI-generated videos,
please watch the following frames of a given video and see the text prompt for generating the video,
then give scores from 5 different dimensions:
(1) visual quality: the quality of the video in terms of clearness, resolution, brightness, and color
(2) temporal consistency, both the consistency of objects or humans and the smoothness of motion or movements
(3) dynamic degree, the degree of dynamic changes
(4) text-to-video alignment, the alignment between the text prompt and the video content
(5) factual consistency, the consistency of the video content with the common-sense and factual knowledge

for each dimension, output a float number from 1.0 to 4.0,
the higher the number is, the better the video performs in that sub-score, \nthe lowest 1.0 means Bad, the highest 4.0 means Perfect/Real (the video is like a real video)
Here is an output example:
visual quality: 3.2
temporal consistency: 2.7
dynamic degree: 4.0
text-to-video alignment: 2.3
factual consistency: 1.8

For this video, the text prompt is "{text_prompt}",
all the frames of video are as follows:
"""

Family = Literal["idefics2", "qwen2_vl"]


@dataclass(frozen=True)
class VideoScoreSpec:
    """How a checkpoint reads a video: its backbone family and its frame rule."""

    family: Family
    # Idefics2: frames per video (linspace over the video, repeats when it is shorter).
    num_frames: int = 16
    # Qwen2-VL: frames per second of video (qwen-vl-utils' rule), capped by ``num_frames``.
    fps: Optional[float] = None


# Published checkpoints (model cards); a local folder is read from its config.json.
KNOWN_MODELS: dict[str, VideoScoreSpec] = {
    "TIGER-Lab/VideoScore": VideoScoreSpec("idefics2", 16),
    "TIGER-Lab/VideoScore-anno-only": VideoScoreSpec("idefics2", 16),
    "TIGER-Lab/VideoScore-v1.1": VideoScoreSpec("idefics2", 48),
    "TIGER-Lab/VideoScore-Qwen2-VL": VideoScoreSpec("qwen2_vl", 768, fps=8.0),
}
DEFAULT_SPECS: dict[str, VideoScoreSpec] = {
    "idefics2": VideoScoreSpec("idefics2", 16),
    "qwen2_vl": VideoScoreSpec("qwen2_vl", 768, fps=8.0),
}

# qwen-vl-utils' video pixel budget (the values its published example ran with).
QWEN_VIDEO_MIN_PIXELS = 128 * 28 * 28
QWEN_VIDEO_MAX_PIXELS = 768 * 28 * 28
QWEN_VIDEO_TOTAL_PIXELS = 24576 * 28 * 28
QWEN_MIN_FRAMES = 4
QWEN_FRAME_FACTOR = 2


def last_token_indices(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last non-padding token of each row of a ``(B, L)`` 0/1 mask."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    return (positions * attention_mask.to(torch.long)).argmax(dim=1)


def pool_last_token(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``hidden[b, last_b]`` for each row: ``(B, L, D)`` -> ``(B, D)``."""
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, last_token_indices(attention_mask).to(hidden.device)]


class _LastTokenHead:
    """``score`` over the backbone's hidden state of each sequence's last non-padding token."""

    def hidden_states(self, **inputs) -> torch.Tensor:
        return self.model(**inputs, use_cache=False).last_hidden_state

    def forward(self, attention_mask: torch.Tensor, **inputs) -> torch.Tensor:
        hidden = self.hidden_states(attention_mask=attention_mask, **inputs)
        return self.score(pool_last_token(hidden, attention_mask))


def _head_classes() -> dict[str, type]:
    """The two architectures, defined on first use so importing vidqa stays light."""
    from transformers.models.idefics2.modeling_idefics2 import Idefics2Model, Idefics2PreTrainedModel
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLModel, Qwen2VLPreTrainedModel

    class Idefics2ForVideoScore(_LastTokenHead, Idefics2PreTrainedModel):
        """Idefics2 backbone (``model.*``) + ``score`` head, the layout of mantis'
        ``Idefics2ForSequenceClassification`` checkpoints."""

        CHECKPOINT_KEYS: Optional[dict[str, str]] = None

        def __init__(self, config):
            super().__init__(config)
            self.model = Idefics2Model(config)
            self.score = nn.Linear(config.text_config.hidden_size, config.num_labels)
            self.post_init()

    class Qwen2VLForVideoScore(_LastTokenHead, Qwen2VLPreTrainedModel):
        """Qwen2-VL backbone + ``score`` head. mantis' checkpoints keep the vision tower at
        ``visual.*`` and the text decoder at ``model.*``; ``CHECKPOINT_KEYS`` maps them onto
        current transformers' ``model.visual`` / ``model.language_model``."""

        CHECKPOINT_KEYS = {r"^visual\.": "model.visual.",
                           r"^model\.(?!visual\.|language_model\.)": "model.language_model."}

        def __init__(self, config):
            super().__init__(config)
            self.model = Qwen2VLModel(config)
            self.score = nn.Linear(config.text_config.hidden_size, config.num_labels)
            self.post_init()

    return {"idefics2": Idefics2ForVideoScore, "qwen2_vl": Qwen2VLForVideoScore}


_CLASSES: dict[str, type] = {}


def head_class(family: Family) -> type:
    if not _CLASSES:
        _CLASSES.update(_head_classes())
    return _CLASSES[family]


def checkpoint_family(folder: Path) -> Family:
    try:
        model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError) as exc:
        raise ScorerError(f"VideoScore checkpoint {folder}: unreadable config.json ({exc})") from exc
    if model_type not in DEFAULT_SPECS:
        raise ScorerError(
            f"VideoScore checkpoint {folder}: model_type {model_type!r} is not a VideoScore backbone "
            f"(expected one of {', '.join(DEFAULT_SPECS)})"
        )
    return model_type  # type: ignore[return-value]


def qwen_frame_size(height: int, width: int, n_frames: int, min_pixels: int = QWEN_VIDEO_MIN_PIXELS,
                    max_pixels: int = QWEN_VIDEO_MAX_PIXELS, total_pixels: int = QWEN_VIDEO_TOTAL_PIXELS,
                    factor: int = 28) -> tuple[int, int]:
    """qwen-vl-utils' frame size for a video: multiples of ``factor`` near the aspect ratio,
    within ``[min_pixels, min(max_pixels, total_pixels / n_frames * 2)]``."""
    budget = max(min(max_pixels, total_pixels / n_frames * QWEN_FRAME_FACTOR), int(min_pixels * 1.05))
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > budget:
        beta = math.sqrt(height * width / budget)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def resize_frames_bicubic(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 -> ``(T, h, w, 3)`` uint8, bicubic with antialiasing (as
    qwen-vl-utils resizes with torchvision)."""
    if frames.shape[1:3] == tuple(size):
        return frames
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as F

    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    out = F.resize(video, list(size), interpolation=InterpolationMode.BICUBIC, antialias=True)
    return out.permute(0, 2, 3, 1).contiguous().numpy()


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def run_halving_on_oom(fn: Callable[[list], torch.Tensor], items: list, on_split: Callable[[int], None] = None
                       ) -> torch.Tensor:
    """``fn(items)``; when that runs out of memory, the two halves separately (recursively,
    down to single items, whose failure is raised). Rows come back in input order."""
    try:
        return fn(items)
    except (RuntimeError, torch.OutOfMemoryError) as exc:
        if len(items) == 1 or not is_out_of_memory(exc):
            raise
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    half = len(items) // 2
    if on_split is not None:
        on_split(half)
    return torch.cat([run_halving_on_oom(fn, items[:half], on_split), run_halving_on_oom(fn, items[half:], on_split)])


class VideoScoreModel:
    """A loaded VideoScore checkpoint: backbone + head on a device, its processor, and the
    frame rule of its model card. ``score(videos, prompts)`` gives ``(B, 5)`` in ``ASPECTS`` order."""

    def __init__(self, name: str, folder: Path, spec: VideoScoreSpec, module: nn.Module, processor: Any,
                 device: str, dtype: torch.dtype):
        self.name, self.folder, self.spec = name, folder, spec
        self.module, self.processor = module, processor
        self.device, self.dtype = device, dtype
        self.weights_id = folder_weights_id(folder)
        # Largest batch that fit so far; a batch that ran out of memory lowers it.
        self.max_batch: Optional[int] = None

    @property
    def family(self) -> Family:
        return self.spec.family

    def identity(self) -> dict[str, Any]:
        return {"model": self.name, "family": self.family, "weights": self.weights_id,
                "dtype": str(self.dtype).removeprefix("torch.")}

    # -- inputs ---------------------------------------------------------------------------
    def _idefics2_inputs(self, videos: list[np.ndarray], prompts: list[str]) -> dict[str, torch.Tensor]:
        texts = []
        for frames, prompt in zip(videos, prompts):
            text = REGRESSION_QUERY_PROMPT.format(text_prompt=prompt)
            # As the model card: one "<image> " per frame not already named in the text.
            text += "<image> " * max(0, len(frames) - text.count("<image>"))
            texts.append(text)
        from PIL import Image

        images = [[Image.fromarray(f) for f in frames] for frames in videos]  # as the model card passes them
        return self.processor(text=texts, images=images, padding=True, return_tensors="pt")

    def _qwen2_vl_inputs(self, videos: list[np.ndarray], prompts: list[str], min_pixels: int, max_pixels: int,
                         total_pixels: int) -> dict[str, torch.Tensor]:
        texts, resized = [], []
        for frames, prompt in zip(videos, prompts):
            messages = [{"role": "user", "content": [
                {"type": "video"}, {"type": "text", "text": REGRESSION_QUERY_PROMPT.format(text_prompt=prompt)}]}]
            texts.append(self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
            size = qwen_frame_size(frames.shape[1], frames.shape[2], len(frames), min_pixels, max_pixels, total_pixels)
            resized.append(resize_frames_bicubic(frames, size))
        # Frames are already at their qwen-vl-utils size (multiples of 28, inside the
        # processor's bounds), so the processor only normalises and cuts patches.
        return self.processor(text=texts, videos=resized, padding=True, return_tensors="pt",
                              videos_kwargs={"do_sample_frames": False, "cap_pixels_per_frame": False})

    def inputs(self, videos: list[np.ndarray], prompts: list[str], **qwen_pixels: int) -> dict[str, torch.Tensor]:
        """Processor outputs for a batch (right-padded, so padding never shifts a token's position)."""
        if self.family == "idefics2":
            return self._idefics2_inputs(videos, prompts)
        return self._qwen2_vl_inputs(videos, prompts, **qwen_pixels)

    # -- forward --------------------------------------------------------------------------
    @torch.inference_mode()
    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        moved = {}
        for key, value in inputs.items():
            if not isinstance(value, torch.Tensor):
                continue
            value = value.to(self.device)
            moved[key] = value.to(self.dtype) if value.is_floating_point() else value
        return self.module(**moved).float()

    def score(self, videos: list[np.ndarray], prompts: list[str], batch_size: int = 1,
              **qwen_pixels: int) -> torch.Tensor:
        """``(len(videos), 5)`` scores; ``batch_size`` videos per forward pass, fewer after
        a pass ran out of GPU memory (then that batch is split and retried)."""
        def run(indices: list[int]) -> torch.Tensor:
            return self.forward(self.inputs([videos[i] for i in indices], [prompts[i] for i in indices],
                                            **qwen_pixels))

        def lower(size: int) -> None:
            self.max_batch = size if self.max_batch is None else min(self.max_batch, size)

        step = max(1, min(batch_size, self.max_batch or batch_size))
        order = list(range(len(videos)))
        out = [run_halving_on_oom(run, order[i:i + step], lower) for i in range(0, len(order), step)]
        return torch.cat(out) if out else torch.empty(0, len(ASPECTS))


@dataclass(frozen=True)
class VideoScoreWeights:
    """The declaration of a VideoScore checkpoint a scorer needs (see :class:`ClipWeights`)."""

    model: str
    precision: str = "auto"
    device: str = "cpu"

    @property
    def what(self) -> str:
        return f"VideoScore model {self.model}"

    @cached_property
    def _checkpoint(self) -> tuple[Path, VideoScoreSpec]:
        return resolve_checkpoint(self.model)

    def spec(self) -> VideoScoreSpec:
        """The checkpoint's family and frame rule, read from its config.json."""
        return self._checkpoint[1]

    def identity(self) -> dict[str, Any]:
        folder, spec = self._checkpoint
        dtype = torch_dtype(resolve_precision(self.precision, self.device))
        return {"model": self.model, "family": spec.family, "weights": folder_weights_id(folder),
                "dtype": str(dtype).removeprefix("torch.")}

    def files(self, models_dir: Path) -> list[WeightFile]:
        return hf_model_files(self.model, "VideoScore model", models_dir)

    def load(self) -> "VideoScoreModel":
        return resident(("videoscore", self.model, self.device, self.precision),
                        lambda: load_videoscore(self.model, self.device, self.precision))


def resolve_checkpoint(model: str, models_dir: Optional[str] = None) -> tuple[Path, VideoScoreSpec]:
    """The local folder of a VideoScore checkpoint and how it reads a video."""
    folder = resolve_hf_model(model, "VideoScore model", models_dir=models_dir)
    family = checkpoint_family(folder)
    spec = KNOWN_MODELS.get(model) or DEFAULT_SPECS[family]
    if spec.family != family:
        raise ScorerError(f"VideoScore model {model}: checkpoint is {family}, expected {spec.family}")
    return folder, spec


def load_videoscore(model: str = "TIGER-Lab/VideoScore", device: str = "cpu", precision: str = "auto",
                    models_dir: Optional[str] = None) -> VideoScoreModel:
    """A VideoScore checkpoint (Hub id, or folder with config.json, weights and processor
    files) on ``device``; bf16 on CUDA and float32 on CPU unless ``precision`` says.

    Raises ScorerError when the checkpoint is not available offline (with the download
    command), is not a VideoScore backbone, or does not match the architecture exactly.
    """
    folder, spec = resolve_checkpoint(model, models_dir)
    family = spec.family
    dtype = torch_dtype(resolve_precision(precision, device))
    cls = head_class(family)
    kwargs: dict[str, Any] = {"dtype": dtype, "output_loading_info": True, "attn_implementation": "sdpa",
                              "key_mapping": cls.CHECKPOINT_KEYS}
    if device.startswith("cuda"):
        kwargs["device_map"] = {"": device}  # straight to the GPU, no full copy in host memory
    try:
        module, info = cls.from_pretrained(str(folder), **kwargs)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ScorerError(f"VideoScore model {model}: cannot load {folder}: {exc}") from exc
    problems = {k: sorted(info.get(k) or ()) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if any(problems.values()):
        head_missing = any(k.startswith("score.") for k in problems["missing_keys"])
        lines = [f"VideoScore model {model}: checkpoint {folder} does not match the {family} VideoScore "
                 f"architecture (loaded strictly)."]
        if head_missing:
            lines.append("  It has no regression head 'score' (Linear(hidden, 5)): a base model, not a "
                         "VideoScore checkpoint?")
        for kind, keys in problems.items():
            if keys:
                shown = ", ".join(str(k) for k in keys[:8]) + (f" ... ({len(keys)} in all)" if len(keys) > 8 else "")
                lines.append(f"  {kind.replace('_', ' ')}: {shown}")
        raise ScorerError("\n".join(lines))
    if module.config.num_labels != len(ASPECTS):
        raise ScorerError(f"VideoScore model {model}: head has {module.config.num_labels} outputs, expected "
                          f"{len(ASPECTS)} ({', '.join(ASPECTS)})")
    module.to(device).eval()
    processor = _load_processor(folder, family, model)
    return VideoScoreModel(model, folder, spec, module, processor, device, dtype)


def _load_processor(folder: Path, family: Family, model: str) -> Any:
    from transformers import AutoProcessor

    try:
        # The published scores were made with the PIL image processor; keep its resampling.
        kwargs = {"backend": "pil"} if family == "idefics2" else {}
        processor = AutoProcessor.from_pretrained(str(folder), **kwargs)
    except (OSError, ValueError, TypeError) as exc:
        raise ScorerError(f"VideoScore model {model}: no usable processor in {folder} ({exc}); the folder needs "
                          f"the checkpoint's tokenizer and processor files") from exc
    processor.tokenizer.padding_side = "right"
    return processor
