"""A circuit breaker per object-store endpoint: an outage is noticed once, not once per object.

After ``VIDQA_S3_BREAKER_FAILURES`` requests in a row failed on transient errors (network
trouble, throttling; retries of one object count), the endpoint is *open*: calls fail at once, for ``VIDQA_S3_BREAKER_COOLDOWN_S``
seconds, with a transient reason (the rerun fetches them). Then one call is let through
(*half-open*): success closes the breaker, failure opens it again. A non-transient error (a
missing object, denied access) says the endpoint answers, and counts as a success.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional, TypeVar

from vidqa.config import get_settings

T = TypeVar("T")


class EndpointDown(ConnectionError):
    """Not tried: the endpoint's breaker is open."""


@dataclass
class _State:
    failures: int = 0
    opened_at: Optional[float] = None
    trial: bool = False  # a half-open trial call is in flight
    last_error: str = ""


_STATES: dict[str, _State] = {}
_LOCK = threading.Lock()


def _admit(endpoint: str) -> None:
    settings = get_settings()
    with _LOCK:
        state = _STATES.setdefault(endpoint, _State())
        if state.opened_at is None:
            return
        if time.monotonic() - state.opened_at >= settings.s3_breaker_cooldown_s and not state.trial:
            state.trial = True  # half-open: this one call finds out
            return
        raise EndpointDown(f"{endpoint} is not answering ({state.failures} requests in a row failed, the last "
                           f"with {state.last_error}): not tried")


def _record(endpoint: str, failed: Optional[BaseException]) -> None:
    with _LOCK:
        state = _STATES.setdefault(endpoint, _State())
        state.trial = False
        if failed is None:
            state.failures, state.opened_at = 0, None
            return
        state.failures += 1
        state.last_error = f"{type(failed).__name__}: {failed}".splitlines()[0][:200]
        if state.failures >= get_settings().s3_breaker_failures:
            state.opened_at = time.monotonic()


def guarded(endpoint: str, fn: Callable[[], T], is_transient: Callable[[BaseException], bool]) -> T:
    """``fn()`` unless ``endpoint``'s breaker is open; its outcome feeds the breaker."""
    _admit(endpoint)
    try:
        result = fn()
    except BaseException as exc:
        _record(endpoint, exc if is_transient(exc) else None)
        raise
    _record(endpoint, None)
    return result


def reset() -> None:
    """Forget every endpoint's state (tests; a long-lived process after a known fix)."""
    with _LOCK:
        _STATES.clear()
