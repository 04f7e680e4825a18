"""Errors that turn into recorded failures instead of crashing a run."""


class VideoError(Exception):
    """A video cannot be used. ``stage`` says where it failed; ``reason`` is for people."""

    def __init__(self, reason: str, stage: str = "probe", transient: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.stage = stage
        # Transient failures (I/O) are retried by a rerun; deterministic ones are final
        # for the same content identity.
        self.transient = transient


class ScorerError(Exception):
    """A scorer cannot score one subject (e.g. no audio for an audio scorer)."""
