"""The ``vidqa`` command line: one module per command group, assembled in ``vidqa.cli.app``.
Run it as ``vidqa ...`` or ``python -m vidqa.cli ...``."""

from vidqa.cli.app import app


def main() -> None:
    """The ``vidqa`` command: the app, with a reaper for what it starts (see ``reaper``)."""
    from vidqa.cli.guard import guard_children

    guard_children()
    app(prog_name="vidqa")


__all__ = ["app", "main"]
