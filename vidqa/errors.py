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


class SetMetricError(ValueError):
    """A set-level metric cannot be computed as asked (no usable samples, unknown reference)."""


class TransientSetError(OSError):
    """Some videos of a set could not be read for now (storage trouble): nothing is stored,
    so a retry or a rerun extracts the complete set."""


class DatabaseLost(RuntimeError):
    """The database stopped answering and did not come back within its grace period: the run
    stops at once (a shard cannot record anything). What was written is committed; a rerun
    finishes the rest."""
