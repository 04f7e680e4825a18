"""Split a video into shots with TransNetV2: frames decoded at the network's 48x27 input
(scaled in the decoder), per-frame boundary probabilities, shots by the published rule, then
the clip rules every split follows (drop shorter than ``min_s``, cut longer than ``max_s``)."""

from __future__ import annotations

from typing import Any

from vidqa.models.transnetv2 import load_transnetv2, shot_boundary_probabilities, weights_sha256
from vidqa.video.clips import SHOT_FRAME_SIZE, ClipSpan, ClipSpec, cut_scenes, predictions_to_shots, split_video
from vidqa.video.decode import iter_frames
from vidqa.video.probe import VideoProbe


def shot_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def detect_shots(path: str, probe: VideoProbe, spec: ClipSpec) -> list[tuple[int, int]]:
    """Shots as frame ranges into the probe's frames."""
    model = load_transnetv2(spec.shot_weights, shot_device())
    probabilities = shot_boundary_probabilities(model, iter_frames(path, probe, size=SHOT_FRAME_SIZE))
    shots = predictions_to_shots(probabilities, spec.shot_threshold, spec.min_shot_frames)
    # Frames the probe counts but the decoder did not give (a corrupt tail) join the last shot.
    if shots and shots[-1][1] < probe.frame_count and probabilities.size < probe.frame_count:
        shots[-1] = (shots[-1][0], probe.frame_count)
    return shots


def split_clips(path: str, probe: VideoProbe, spec: ClipSpec) -> list[ClipSpan]:
    """The clips of a video under ``spec``: shots here, every other split by vidqa.video.clips."""
    if spec.method != "shots":
        return split_video(path, probe, spec)
    return cut_scenes(probe, detect_shots(path, probe, spec), spec.min_s, spec.max_s, kind="shot")


def split_details(spec: ClipSpec) -> dict[str, Any]:
    """What the recorded split says of how it was made: its settings, and for shots the
    weights' SHA-256 (a replaced file at the same path is told apart)."""
    details = spec.model_dump(mode="json")
    if spec.method == "shots":
        details["weights_sha256"] = weights_sha256(spec.shot_weights)
    return details
