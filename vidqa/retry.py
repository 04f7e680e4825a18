"""Retries with exponential backoff for transient I/O."""

from __future__ import annotations

import logging
import random
import time
from typing import Callable, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


def call_with_retries(
    fn: Callable[[], T],
    *,
    is_transient: Callable[[BaseException], bool],
    attempts: int = 5,
    base_delay_s: float = 0.5,
    max_delay_s: float = 15.0,
    what: str = "call",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``fn()``, retried on transient errors with full-jitter exponential backoff.

    The delay before retry ``k`` (0-based) is uniform in ``[0, min(max, base * 2**k)]``:
    many workers hitting a throttled bucket spread out instead of retrying in lockstep.
    A non-transient error, or the last attempt's error, propagates unchanged.
    """
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts - 1 or not is_transient(exc):
                raise
            delay = random.uniform(0, min(max_delay_s, base_delay_s * 2**attempt))
            log.warning("%s failed (%s: %s); retry %d/%d in %.1fs",
                        what, type(exc).__name__, exc, attempt + 1, attempts - 1, delay)
            sleep(delay)
    raise AssertionError("unreachable")
