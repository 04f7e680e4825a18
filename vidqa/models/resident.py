"""Models resident in this process: each loaded once per key, all released together.

Every loader (CLIP, LAION heads, audio pipelines, VideoScore, set-level detectors) and every
built scorer keeps what it loaded here, under a key that names the kind and everything the
load depends on, so :func:`release_resident` really frees the memory: nothing else holds on.
"""

from __future__ import annotations

import gc
import sys
import threading
from typing import Any, Callable, Hashable, TypeVar

T = TypeVar("T")

_models: dict[tuple[Hashable, ...], Any] = {}
_loading: dict[tuple[Hashable, ...], threading.Lock] = {}
_lock = threading.Lock()


def resident(key: tuple[Hashable, ...], load: Callable[[], T]) -> T:
    """The object kept under ``key``, made by ``load()`` the first time. Threads asking for
    one key wait for its single load; loads of different keys run side by side."""
    with _lock:
        if key in _models:
            return _models[key]
        key_lock = _loading.setdefault(key, threading.Lock())
    with key_lock:
        with _lock:
            if key in _models:
                return _models[key]
        value = load()  # a failed load keeps nothing: the next call tries again
        with _lock:
            _models[key] = value
            _loading.pop(key, None)
        return value


def resident_kinds() -> list[Hashable]:
    """The first element (the kind: "clip", "scorer", ...) of every key kept now."""
    with _lock:
        return [key[0] for key in _models]


def release_resident(kind: Hashable | None = None) -> int:
    """Forget every resident object (or those of one kind) and give GPU memory back; the
    next request loads again. Returns how many were dropped."""
    with _lock:
        keys = [k for k in _models if kind is None or k[0] == kind]
        for key in keys:
            del _models[key]
    gc.collect()
    torch = sys.modules.get("torch")  # no torch imported: no GPU memory to give back
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    return len(keys)
