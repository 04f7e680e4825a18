"""VideoAudioSimilarity as the operator promises (REFERENCE §2): the audio becomes text, and
that text is compared with the frames in CLIP space.

The public operator scores every video against the fixed text "audio sound" and never hears
the audio. Here the text is, per row: the ``audio_text`` field when the manifest provides a
description; otherwise the output of a transformers audio pipeline (speech recognition: the
words said; audio classification: "the sound of <top labels>") over the clip's span of the
``audio_path`` file when given, else of the video's own audio track.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vidqa.video.audio import AudioRequest
from vidqa.errors import ScorerError
from vidqa.models import resolve_precision
from vidqa.models.audio import AudioModelWeights, AudioTask, AudioToText
from vidqa.scorers.base import CliFlags, Metric, ScoreItem, ScorerConfig, Weights
from vidqa.scorers.clip_based import ClipModelConfig, ClipBasedScorer, ClipBasedConfig
from vidqa.video.sampling import SamplingSpec
from vidqa.scorers.text_video import Flip, Reduce, reduce_similarities


class AudioTextConfig(BaseModel):
    """Where a row's audio text comes from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text_key: str = Field("audio_text", description="Manifest column with a provided audio description (used first).")
    audio_key: str = Field("audio_path", description="Manifest column with a separate audio file (else the video's track).")
    model: Optional[str] = Field(
        None, description="transformers audio model (Hub id or folder), e.g. openai/whisper-tiny; "
        "none: only provided descriptions are used.",
    )
    task: AudioTask = Field("automatic-speech-recognition", description="Speech recognition or audio classification.")
    top_k: int = Field(3, ge=1, le=50, description="audio-classification: labels in the text.")
    label_template: str = Field("the sound of {labels}", description="audio-classification: text around the labels.")
    max_audio_s: float = Field(60.0, gt=0, description="Audio heard per clip, from the clip's start (seconds).")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field("auto", description="auto: fp16 on CUDA, fp32 on CPU.")

    @model_validator(mode="after")
    def _check(self) -> "AudioTextConfig":
        if "{labels}" not in self.label_template:
            raise ValueError("label_template must contain {labels}")
        return self


class VideoAudioConfig(ClipBasedConfig):
    clip: ClipModelConfig = Field(default_factory=ClipModelConfig, description="CLIP model.")
    sampling: SamplingSpec = Field(
        default_factory=lambda: SamplingSpec(method="uniform", n=3),
        description="Frames compared with the audio text (data-juicer: uniform with frame_num 3, or keyframes).",
    )
    audio: AudioTextConfig = Field(default_factory=AudioTextConfig, description="Audio to text.")
    reduce: Reduce = Field("avg", description="How frame similarities become the clip's score.")
    flip: Flip = Field("none", description="Add flipped copies of the frames before reducing.")
    min_score: float = Field(0.0, description="Pass when min_score <= similarity <= max_score.")
    max_score: float = Field(1.0, description="Pass when min_score <= similarity <= max_score.")

    @classmethod
    def flag_overrides(cls, flags: CliFlags) -> dict[str, Any]:
        out = super().flag_overrides(flags)
        if flags.audio_model:
            out["audio"] = {"model": flags.audio_model}
        return out

    @model_validator(mode="after")
    def _check(self) -> "VideoAudioConfig":
        if self.min_score > self.max_score:
            raise ValueError("min_score must not exceed max_score")
        return self


class VideoAudioScorer(ClipBasedScorer):
    """``video_audio_sim`` = reduce over frames of ``cos(clip_image(f), clip_text(audio_text))``
    (raw cosine, as text_video); ``video_audio_pass`` = 1 when
    ``min_score <= video_audio_sim <= max_score`` else 0. The audio text, where it came from,
    and min/avg/max are in the details. CLIP reads at most 77 tokens of the text."""

    name: ClassVar[str] = "video_audio"
    title: ClassVar[str] = "Video-audio similarity"
    summary: ClassVar[str] = (
        "CLIP similarity of frames and the audio's text (provided description, or speech recognition)."
    )
    version: ClassVar[str] = "1"
    config_model: ClassVar[type[ScorerConfig]] = VideoAudioConfig
    metrics: ClassVar[tuple[str, ...]] = ("video_audio_sim", "video_audio_pass")

    def weights(self) -> dict[str, Weights]:
        declared = super().weights()
        a = self.config.audio
        if a.model:
            device = self.config.runtime.resolved_device()
            declared["audio_model"] = AudioModelWeights(a.model, a.task, resolve_precision(a.precision, device, gpu="fp16"),
                                                        device, a.top_k, a.label_template)
        return declared

    @property
    def audio_to_text(self) -> Optional[AudioToText]:
        return self.models.get("audio_model")

    def _provided_text(self, fields: dict[str, Any]) -> Optional[str]:
        text = fields.get(self.config.audio.text_key)
        return text if isinstance(text, str) and text.strip() else None

    def inputs(self, fields: dict[str, Any]) -> dict[str, Any]:
        a = self.config.audio
        text = self._provided_text(fields)
        if text is not None:
            return {a.text_key: text}
        if not a.model:
            raise ScorerError(f"no {a.text_key!r} audio description, and no audio model configured "
                              "(audio.model) to make one from the audio")
        audio_path = fields.get(a.audio_key)
        return {a.audio_key: audio_path} if audio_path else {}

    def audio_request(self, fields: dict[str, Any]) -> Optional[AudioRequest]:
        if self._provided_text(fields) is not None or not self.config.audio.model:
            return None
        source = fields.get(self.config.audio.audio_key) or None
        # The rate the model hears at is known once it is loaded: the clip's audio is
        # decoded only for clips with work left, so loading here costs nothing extra.
        rate = self.setup().audio_to_text.sampling_rate
        return AudioRequest(rate, self.config.audio.max_audio_s, source)

    def _texts(self, items: list[ScoreItem]) -> list[tuple[str, str] | Exception]:
        """(text, where it came from) per item, or the reason there is none."""
        out: list[tuple[str, str] | Exception] = []
        for item in items:
            provided = self._provided_text(item.fields)
            if provided is not None:
                out.append((provided, "field:" + self.config.audio.text_key))
            elif item.audio is None or self.audio_to_text is None:
                out.append(ScorerError("no audio was decoded for this clip"))
            else:
                (text,) = self.audio_to_text([item.audio])
                out.append((text, f"model:{self.audio_to_text.name}") if text.strip() else
                           ScorerError(f"{self.audio_to_text.task} heard nothing in {item.audio.source} "
                                       f"({item.audio.duration_s:.1f} s of audio)"))
        return out

    def score(self, items: list[ScoreItem]) -> list[dict[str, Metric] | Exception]:
        texts = self._texts(items)
        results: list[dict[str, Metric] | Exception] = [t if isinstance(t, Exception) else {} for t in texts]
        ok = [n for n, t in enumerate(texts) if not isinstance(t, Exception)]
        if not ok:
            return results
        c = self.config
        sims_per_clip = self.text_similarities([items[n].frames for n in ok], [texts[n][0] for n in ok], c.flip)
        for n, sims in zip(ok, sims_per_clip):
            text, origin = texts[n]
            reduced = reduce_similarities(sims)
            value = reduced[c.reduce]
            details = {
                **{f"sim_{k}": v for k, v in reduced.items()},
                "frame_sims": [float(x) for x in sims],  # flipped copies follow the originals
                "flip": c.flip, "audio_text": text, "audio_text_from": origin,
            }
            audio = items[n].audio
            if audio is not None:
                details.update(audio_source=audio.source, audio_offset_s=audio.offset_s, audio_s=audio.duration_s)
            passed = c.min_score <= value <= c.max_score
            results[n] = {
                "video_audio_sim": Metric.of(value, details),
                "video_audio_pass": Metric.of(float(passed), {"min_score": c.min_score, "max_score": c.max_score,
                                                              "video_audio_sim": value}),
            }
        return results
