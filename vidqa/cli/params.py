"""Flow parameters from a config file and command-line flags (shared by `run` and `models`)."""

from __future__ import annotations

from typing import Any, Optional

def parse_sampling(text: str) -> dict[str, Any]:
    """``uniform:16``, ``every_n_seconds:1``, ``every_n_frames:5``, ``fps_step:2``, ``keyframes``,
    ``fractions:0.1,0.5,0.9``, ``all`` (at most 1024 frames, else an error), ``all:N`` (at most N)."""
    method, _, arg = text.partition(":")
    if method == "uniform":
        return {"method": method, "n": int(arg or 16)}
    if method == "every_n_seconds":
        return {"method": method, "seconds": float(arg)}
    if method == "every_n_frames":
        return {"method": method, "step": int(arg)}
    if method == "fps_step":
        return {"method": method, "fps": float(arg)}
    if method == "fractions":
        return {"method": method, "fractions": [float(x) for x in arg.split(",")]}
    if method in ("keyframes", "all") and not arg:
        return {"method": method}
    if method == "all":
        return {"method": method, "max_frames": int(arg)}
    raise ValueError(f"--sampling {text!r}: use uniform:N, every_n_seconds:S, every_n_frames:K, fps_step:R, keyframes, "
                     "fractions:a,b,c, all or all:MAX_FRAMES")


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: Optional[str]) -> dict[str, Any]:
    """A run configuration file: the flow's parameters as YAML or JSON (any subset)."""
    if not path:
        return {}
    import yaml

    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of flow parameters")
    return data


def build_params(source: str, config: dict[str, Any], *, scorers: Optional[str] = None,
                 sampling: Optional[str] = None, frames: Optional[int] = None, max_size: Optional[int] = None,
                 clip_model: Optional[str] = None, device: Optional[str] = None,
                 audio_model: Optional[str] = None, videoscore_model: Optional[str] = None,
                 **top: Any) -> "ScoreVideosParams":  # noqa: F821 - imported lazily
    """Flow parameters from a config file's values overridden by command-line flags; each
    scorer's configuration says which flags it reads (``ScorerConfig.flag_overrides``)."""
    from flows.score_videos import ScoreVideosParams
    from vidqa.scorers import SCORERS
    from vidqa.scorers.base import CliFlags

    params = merge(config, {"source": source, **{k: v for k, v in top.items() if v is not None}})
    if scorers:
        params["scorers"] = [s.strip() for s in scorers.split(",") if s.strip()]
    chosen = params.get("scorers") or ScoreVideosParams.model_fields["scorers"].default
    frame_rule = parse_sampling(sampling) if sampling else {"method": "uniform", "n": frames} if frames is not None else None
    flags = CliFlags(sampling=frame_rule, frames=frames, max_size=max_size, device=device, clip_model=clip_model,
                     audio_model=audio_model, videoscore_model=videoscore_model)
    for name in chosen:
        if name not in SCORERS:
            continue  # validation below names the unknown scorer and the known ones
        update = SCORERS[name].config_model.flag_overrides(flags)
        if update:
            params[name] = merge(params.get(name, {}), update)
    return ScoreVideosParams.model_validate(params)
