"""What every scorer is: a named, hashed configuration that scores clips from shared frames.

A scorer has a lifecycle (the Cosmos-Curate / NeMo Curator stage pattern):

1. **Construction is cheap**: ``Scorer(config, context)`` validates the configuration and
   declares what it needs: the weights it loads (:meth:`Scorer.weights`), the GPU share and
   batch size it wants (``resources``), and what each clip must bring (:meth:`Scorer.needs`:
   frames, audio, text fields). Its identity, ``config_hash``, comes from the configuration,
   the run-level context and the hashes of its weight files, found on disk without loading
   anything; a missing file fails here, with the command that fetches it.
2. :meth:`Scorer.setup` loads the models, once, in the process that scores (models are kept in
   :mod:`vidqa.models.resident`, so ``release_resident_scorers`` frees them all).
3. :meth:`Scorer.score` takes a batch of clips and gives their metrics.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Literal, Optional, Protocol

from pydantic import BaseModel, ConfigDict, Field

from vidqa.errors import ScorerError
from vidqa.hashing import stable_hash
from vidqa.video.audio import AudioClip, AudioRequest
from vidqa.video.clips import ClipSpan
from vidqa.video.decode import Frames
from vidqa.video.probe import VideoProbe
from vidqa.video.sampling import SamplingSpec


class Resources(BaseModel):
    """What a scorer needs from a worker (Cosmos-Curate style stage declaration)."""

    model_config = ConfigDict(frozen=True)

    gpus: float = Field(0.0, ge=0, description="GPU share per worker (0 = CPU only).")
    batch_size: int = Field(1, ge=1, description="Clips scored per call.")


def input_hash(inputs: dict[str, Any]) -> str:
    """Identity of the text a score was computed from; '' for scorers that read none."""
    return stable_hash(inputs) if inputs else ""


class Runtime(BaseModel):
    """Where and how fast a scorer runs; never part of a score's identity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present.")
    batch_size: int = Field(64, ge=1, description="Frames per encoder batch.")

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


def weights_file_field(description: str) -> Any:
    """A configuration field naming a weights file: the file's hash (the declared weights'
    identity) is part of ``config_hash``, its spelling is not, so the same file under another
    path scores as the same configuration and another file under the same path does not."""
    return Field(None, description=description, json_schema_extra={"weights_file": True})


def _weights_file_fields(config: BaseModel) -> set[str]:
    return {name for name, f in type(config).model_fields.items()
            if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("weights_file")}


class ScorerConfig(BaseModel):
    """Base of every scorer's configuration; ``sampling`` decides which frames it sees."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sampling: SamplingSpec = Field(default_factory=SamplingSpec, description="Frames this scorer sees.")
    runtime: Runtime = Field(default_factory=Runtime, description="Device and batch size (do not change scores).")

    @classmethod
    def flag_overrides(cls, flags: "CliFlags") -> dict[str, Any]:
        """What the command line's shared flags set in this configuration (``vidqa run``):
        frames, sampling, frame size and device. A scorer whose settings read other flags
        (a model name) or not these (its frames are fixed) overrides this."""
        out: dict[str, Any] = {}
        if flags.sampling is not None:
            out["sampling"] = dict(flags.sampling)
        if flags.max_size is not None:
            out.setdefault("sampling", {})["max_size"] = flags.max_size
        if flags.device:
            out["runtime"] = {"device": flags.device}
        return out


@dataclass(frozen=True)
class CliFlags:
    """The command line's flags that scorers' configurations may read (see ``flag_overrides``)."""

    sampling: Optional[dict[str, Any]] = None
    frames: Optional[int] = None
    max_size: Optional[int] = None
    device: Optional[str] = None
    clip_model: Optional[str] = None
    audio_model: Optional[str] = None
    videoscore_model: Optional[str] = None


class Weights(Protocol):
    """A declared model file (or folder) a scorer needs. ``identity`` names it from its files
    (hashes) without loading it and raises ScorerError, saying how to get it, when it is
    missing; ``files`` plans its download; ``load`` gives the resident model, whose own
    ``identity()`` must equal the declared one."""

    @property
    def what(self) -> str: ...

    def identity(self) -> dict[str, Any]: ...

    def files(self, models_dir: Any) -> list: ...

    def load(self) -> Any: ...


@dataclass(frozen=True)
class ClipNeeds:
    """What one clip of a row must bring to a scorer; the pipeline fulfils it: frames decoded
    once per sampling and clip, audio once per request and clip, text from the row."""

    inputs: dict[str, Any]  # text fields read: part of each score's identity
    frames: SamplingSpec
    audio: Optional[AudioRequest] = None

    @property
    def input_hash(self) -> str:
        return input_hash(self.inputs)


@dataclass
class ScoreItem:
    """One subject to score: a clip of a video with its decoded frames and text fields."""

    uri: str
    probe: VideoProbe
    frames: Frames
    fields: dict[str, Any] = field(default_factory=dict)
    clip: Optional[ClipSpan] = None
    # The clip's audio, decoded for scorers whose ``needs`` asked for it.
    audio: Optional[AudioClip] = None


@dataclass
class Metric:
    value: Optional[float]
    details: Optional[dict] = None

    @classmethod
    def of(cls, value: Optional[float], details: Optional[dict] = None) -> "Metric":
        # NaN and infinities are not scores: store NULL and say why.
        if value is not None and not math.isfinite(value):
            return cls(None, {**(details or {}), "undefined": f"non-finite value {value!r}"})
        return cls(value, details)


class Scorer:
    """Subclasses set ``name``, ``version``, ``config_model``, ``metrics``, declare
    :meth:`weights`, and implement :meth:`load` (if they hold more than their weights) and
    :meth:`score`."""

    name: ClassVar[str]
    # The settings' heading and one-line description in the flow's form (Prefect UI).
    title: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    # Bump when the computation changes, so stored scores of the old code are not reused.
    version: ClassVar[str] = "1"
    config_model: ClassVar[type[ScorerConfig]] = ScorerConfig
    metrics: ClassVar[tuple[str, ...]] = ()
    resources: ClassVar[Resources] = Resources()

    def __init__(self, config: Optional[ScorerConfig | dict] = None, context: Optional[dict[str, Any]] = None):
        if config is None:
            config = self.config_model()
        elif isinstance(config, dict):
            config = self.config_model.model_validate(config)
        self.config = config
        # Run-level context computed over the whole source (e.g. EMScore's IDF corpus).
        self.context: dict[str, Any] = dict(context or {})
        self.models: dict[str, Any] = {}
        self._setup_lock = threading.Lock()
        self._ready = False

    # -- declarations (cheap) --------------------------------------------------------------

    def weights(self) -> dict[str, Weights]:
        """The model files this scorer loads, by the key their identity takes in
        :meth:`identity` (``clip``, ``head``, ...)."""
        return {}

    @cached_property
    def declared_weights(self) -> dict[str, Weights]:
        return self.weights()

    @property
    def sampling(self) -> SamplingSpec:
        return self.config.sampling

    @property
    def queue_size(self) -> int:
        """Clips a worker gathers before calling :meth:`score` once."""
        return self.resources.batch_size

    def inputs(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The text fields of a manifest row this scorer reads; part of each score's
        identity. Raises ScorerError when a required field is missing."""
        return {}

    def audio_request(self, fields: dict[str, Any]) -> Optional[AudioRequest]:
        """The audio this scorer must hear for a row, or None when it needs none."""
        return None

    def from_embeddings_refusal(self) -> Optional[str]:
        """Why this scorer cannot score a clip from its stored frame embeddings alone
        (``--from-embeddings``); None when it can (its ``score`` then gets frames whose
        ``derived["clip_embeddings"]`` holds them and no pixels)."""
        return f"{self.name} reads decoded frames"

    def needs(self, fields: dict[str, Any]) -> ClipNeeds:
        """What each clip of the row ``fields`` must bring (raises ScorerError when the row
        lacks a text field this scorer requires)."""
        return ClipNeeds(self.inputs(fields), self.sampling, self.audio_request(fields))

    def context_for(self, rows: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        """Run-level context from every ``(uri, fields)`` row of the source (computed once
        per run, before scoring, and handed to every worker's scorer)."""
        return {}

    # -- identity --------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        """What the scores depend on; its hash is ``config_hash``. Settings that do not
        change a score (device, batch size) stay out."""
        config = self.config.model_dump(mode="json", exclude={"runtime", *_weights_file_fields(self.config)})
        return {"scorer": self.name, "version": self.version, "config": config, **self.model_identity()}

    def model_identity(self) -> dict[str, Any]:
        """Identity of the declared weights (their files' hashes), and of anything else
        outside the configuration that changes scores (run context)."""
        return {key: w.identity() for key, w in self.declared_weights.items()}

    @cached_property
    def identity_record(self) -> dict[str, Any]:
        """:meth:`identity`, computed once (it hashes weight files): what the
        ``scorer_configs`` table keeps under ``config_hash``."""
        return self.identity()

    @cached_property
    def config_hash(self) -> str:
        return stable_hash(self.identity_record)

    # -- lifecycle -------------------------------------------------------------------------

    def setup(self) -> "Scorer":
        """Load the declared weights (resident in this process) and whatever :meth:`load`
        builds; once per scorer, in the process that scores."""
        with self._setup_lock:
            if not self._ready:
                for key, declared in self.declared_weights.items():
                    model = declared.load()
                    named = self.identity_record[key]  # what config_hash was computed from
                    if model.identity() != named:
                        raise ScorerError(
                            f"{self.name}: the loaded {declared.what} is not the one its configuration hash "
                            f"names ({model.identity()} != {named})"
                        )
                    self.models[key] = model
                self.load()
                self._ready = True
        return self

    def load(self) -> None:
        """Build what scoring needs beyond the declared weights (tables, checks); ``models``
        holds the loaded weights by key."""

    def score(self, items: list[ScoreItem]) -> list[dict[str, Metric] | Exception]:
        """Score a batch; one entry per item: its metrics, or the exception that failed it."""
        raise NotImplementedError
