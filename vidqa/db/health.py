"""Telling a database that is gone from one that blinked: a dropped connection is retried
when the server answers again within ``VIDQA_DATABASE_GRACE_S``; otherwise the run stops
with :class:`~vidqa.errors.DatabaseLost` (one line, not minutes of retries)."""

from __future__ import annotations

import logging
import threading
import time

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from vidqa.config import get_settings
from vidqa.errors import DatabaseLost

log = logging.getLogger(__name__)
_LOST: dict[str, DatabaseLost] = {}  # database (URL without password) -> why it was given up on
_LOCK = threading.Lock()


def is_connection_error(exc: BaseException) -> bool:
    """A connection that failed, dropped or was refused (not a bad statement)."""
    return isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)) or \
        bool(getattr(exc, "connection_invalidated", False))


def _name(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def answers(engine: Engine, within_s: float, poll_s: float = 0.5) -> bool:
    """Whether a new connection runs ``SELECT 1`` within ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except sa.exc.DBAPIError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)


def lost_error(engine: Engine) -> DatabaseLost | None:
    """The database's loss, if this process has given up on it and it still does not answer."""
    known = _LOST.get(_name(engine))
    if known is not None and answers(engine, 0):
        _LOST.pop(_name(engine), None)  # back: a long-lived worker goes on
        return None
    return known


def judge(engine: Engine, exc: BaseException) -> BaseException:
    """What to raise for a database error: the error itself when the server answers again
    (the caller's retry redoes the work; the ledger skips what was written), else
    :class:`DatabaseLost`, remembered so that every later shard of this process stops at
    once."""
    if not is_connection_error(exc):
        return exc
    known = _LOST.get(_name(engine))
    if known is not None:
        return known
    grace = get_settings().database_grace_s
    if answers(engine, grace):
        log.warning("the database dropped a connection and answers again; retrying: %s", exc)
        return exc
    first_line = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    lost = DatabaseLost(f"the database stopped answering ({first_line}; still not back after {grace:g} s). "
                        "Every score written so far is stored; rerun the same command to finish the rest")
    with _LOCK:
        _LOST.setdefault(_name(engine), lost)
    return _LOST[_name(engine)]
