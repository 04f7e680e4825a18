"""Audio to text with a transformers pipeline, offline: speech recognition (the words said)
or audio classification (what is heard, as "the sound of <labels>").

    a2t = load_audio_to_text("openai/whisper-tiny")            # local folder or cached Hub id
    texts = a2t([clip_16k_mono])                               # one string per clip

One pipeline per (model, task, device, precision) per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence


from vidqa.video.audio import AudioClip
from vidqa.errors import ScorerError
from vidqa.models import torch_dtype
from vidqa.models.download import WeightFile
from vidqa.models.hub import folder_weights_id, hf_model_files, resolve_hf_model
from vidqa.models.resident import resident

AudioTask = Literal["automatic-speech-recognition", "audio-classification"]


@dataclass
class AudioToText:
    name: str
    task: str
    folder: Path
    pipe: Any
    top_k: int = 3
    label_template: str = "the sound of {labels}"
    chunk_s: float = 30.0

    @property
    def sampling_rate(self) -> int:
        return int(self.pipe.feature_extractor.sampling_rate)

    def identity(self) -> dict[str, Any]:
        return {"model": self.name, "task": self.task, "weights": folder_weights_id(self.folder)}

    def __call__(self, clips: Sequence[AudioClip]) -> list[str]:
        """One text per clip. Clips go through one at a time: padding a batch changes what
        CTC models hear, and a score must not depend on its batch neighbours."""
        out = []
        for clip in clips:
            if clip.sample_rate != self.sampling_rate:
                raise ValueError(f"audio at {clip.sample_rate} Hz, the model wants {self.sampling_rate} Hz")
            raw = {"raw": clip.samples, "sampling_rate": clip.sample_rate}
            if self.task == "audio-classification":
                labels = self.pipe(raw, top_k=self.top_k)
                out.append(self.label_template.format(labels=", ".join(p["label"] for p in labels)))
            else:
                long = clip.duration_s > self.chunk_s
                result = self.pipe(raw, chunk_length_s=self.chunk_s) if long else self.pipe(raw)
                out.append(" ".join(result["text"].split()))
        return out


@dataclass(frozen=True)
class AudioModelWeights:
    """The declaration of an audio-to-text model a scorer needs (see :class:`ClipWeights`)."""

    model: str
    task: AudioTask = "automatic-speech-recognition"
    precision: str = "fp32"
    device: str = "cpu"
    top_k: int = 3
    label_template: str = "the sound of {labels}"

    @property
    def what(self) -> str:
        return f"audio model {self.model}"

    def identity(self) -> dict[str, Any]:
        folder = resolve_hf_model(self.model, "audio model")
        return {"model": self.model, "task": self.task, "weights": folder_weights_id(folder)}

    def files(self, models_dir: Path) -> list[WeightFile]:
        return hf_model_files(self.model, "audio model", models_dir)

    def load(self) -> AudioToText:
        return load_audio_to_text(self.model, self.task, self.device, self.precision, self.top_k, self.label_template)


def load_audio_to_text(
    model: str, task: AudioTask = "automatic-speech-recognition", device: str = "cpu", precision: str = "fp32",
    top_k: int = 3, label_template: str = "the sound of {labels}",
) -> AudioToText:
    """A resident audio-to-text pipeline for ``model`` (a folder, or a Hub id found offline)."""
    def build() -> AudioToText:
        folder = resolve_hf_model(model, "audio model")
        try:
            from transformers import pipeline

            pipe = pipeline(task, model=str(folder), device=device, dtype=torch_dtype(precision))
        except Exception as exc:
            raise ScorerError(f"audio model {model!r} ({folder}) does not load as a {task} pipeline: "
                              f"{type(exc).__name__}: {exc}") from exc
        return AudioToText(model, task, folder, pipe, top_k, label_template)

    return resident(("audio", model, task, str(device), precision, top_k, label_template), build)
