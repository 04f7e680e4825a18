"""A scorer configuration in a few words, for people reading scores: ``technical v1
uniform:16 (3f2a9c1e)`` says which settings a value came from without opening the JSON."""

from __future__ import annotations

from typing import Any

_ARG = {"uniform": "n", "linspace": "n", "every_n_seconds": "seconds", "every_n_frames": "step",
        "fractions": "fractions", "fps_step": "fps"}


def sampling_summary(sampling: dict[str, Any]) -> str:
    """``uniform:16``, ``every_n_seconds:1.0``, ``fractions:0.1,0.5,0.9``, ``keyframes``, ``all``;
    a frame-size cap as ``@<max_size>px``."""
    method = sampling.get("method", "uniform")
    arg = sampling.get(_ARG.get(method, ""), None)
    if isinstance(arg, (list, tuple)):
        arg = ",".join(f"{a:g}" if isinstance(a, float) else str(a) for a in arg)
    text = f"{method}:{arg}" if arg is not None else method
    if sampling.get("max_size"):
        text += f"@{sampling['max_size']}px"
    return text


def config_summary(config_hash: str, identity: dict[str, Any]) -> str:
    """A stored identity (``scorer_configs.config``) as ``<scorer> v<version> <frames> (<hash>)``."""
    config = identity.get("config", {})
    sampling = config.get("sampling") or identity.get("frames")
    parts = [identity.get("scorer", "?"), f"v{identity.get('version', '?')}"]
    if sampling:
        parts.append(sampling_summary(sampling))
    return " ".join(parts) + f" ({config_hash[:8]})"
