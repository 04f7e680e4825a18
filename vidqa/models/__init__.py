"""Model loading for scorers: offline factories that turn a name or a path into a ready model.

Nothing here downloads. Weights come from local files, the Hugging Face / open_clip caches,
or a ``VIDQA_MODELS_DIR`` folder; when they are missing the error says which file was looked
for and how to provide it. Submodules import their heavy dependencies (torch, open_clip) on
import, so import the one you need: ``vidqa.models.clip_model``, ``vidqa.models.aesthetic``.
"""

MODELS_DIR_ENV = "VIDQA_MODELS_DIR"


def resolve_precision(precision: str, device: str, gpu: str = "bf16") -> str:
    """A configured precision with ``auto`` settled: ``gpu`` on CUDA, ``fp32`` elsewhere."""
    if precision != "auto":
        return precision
    return gpu if device.startswith("cuda") else "fp32"


def torch_dtype(precision: str):
    """The torch dtype of ``fp32``, ``bf16`` or ``fp16`` weights."""
    import torch

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
