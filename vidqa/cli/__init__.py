"""The ``vidqa`` command line: one module per command group, assembled in ``vidqa.cli.app``.
Run it as ``vidqa ...`` or ``python -m vidqa.cli ...``."""

from vidqa.cli.app import app

__all__ = ["app"]
