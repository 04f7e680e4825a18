"""A shard's claims on the videos it scores, so two runs over the same bytes score them once.

A shard claims a video (its content id) after the ledger says work is left and before
fetching it, and reads the ledger again under the claim (a run that held it may just have
finished). A video claimed by someone else is deferred: the shard scores the rest, releases
its own claims, then waits for the other claim to go (released, or lapsed because its
process died) and looks again. Claims are renewed from one daemon thread per process while
their shard lives.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Optional

from sqlalchemy.engine import Engine

from vidqa.config import get_settings
from vidqa.db import claims as sql

log = logging.getLogger(__name__)

_LIVE: dict[str, Engine] = {}  # holder -> its database, renewed while present
_UNRELEASED: dict[str, Engine] = {}  # holder -> its database: a release the database missed
_LOCK = threading.Lock()
_RENEWER: Optional[threading.Thread] = None


def _renew_forever() -> None:
    while True:
        lease = get_settings().claim_lease_s
        time.sleep(lease / 3)
        with _LOCK:
            by_engine: dict[int, tuple[Engine, list[str]]] = {}
            for holder, engine in _LIVE.items():
                by_engine.setdefault(id(engine), (engine, []))[1].append(holder)
        for engine, holders in by_engine.values():
            try:
                with engine.begin() as conn:
                    sql.renew_claims(conn, holders, lease)
            except Exception as exc:  # noqa: BLE001 - a missed renewal is retried; a lapse costs a rescore, not a row
                log.warning("claims not renewed: %s", exc)
        for engine in {id(e): e for e in list(_UNRELEASED.values())}.values():
            _release_missed(engine)


def _release_missed(engine: Engine) -> None:
    """Release the claims of ended shards whose release the database missed (it dropped the
    connection): a retry of the shard must not wait for its own dead attempt's lease."""
    with _LOCK:
        missed = [h for h, e in _UNRELEASED.items() if e is engine]
    for holder in missed:
        try:
            with engine.begin() as conn:
                sql.release_claims(conn, holder)
        except Exception:  # noqa: BLE001 - still unreachable: next time
            return
        with _LOCK:
            _UNRELEASED.pop(holder, None)


class ShardClaims:
    """The claims one shard holds (``with``: released when the shard ends, however it ends)."""

    def __init__(self, engine: Engine, run_id: Optional[uuid.UUID], label: str):
        self.engine = engine
        self.run_id = run_id
        self.holder = f"run {run_id or '-'} {label} on {socket.gethostname()} pid {os.getpid()} ({uuid.uuid4().hex[:8]})"

    def __enter__(self) -> "ShardClaims":
        global _RENEWER
        with _LOCK:
            _LIVE[self.holder] = self.engine
            if _RENEWER is None or not _RENEWER.is_alive():
                _RENEWER = threading.Thread(target=_renew_forever, name="vidqa-claims", daemon=True)
                _RENEWER.start()
        return self

    def __exit__(self, *exc) -> None:
        with _LOCK:
            _LIVE.pop(self.holder, None)
        try:
            self.release()
        except Exception as exc:  # noqa: BLE001 - released at the next chance, or they lapse
            log.info("claims of %s not released yet: %s", self.holder, exc)
            with _LOCK:
                _UNRELEASED[self.holder] = self.engine

    def take(self, content_id: str) -> Optional[str]:
        """None when this shard holds the claim now; else who holds it."""
        if _UNRELEASED:
            _release_missed(self.engine)
        with self.engine.begin() as conn:
            return sql.take_claim(conn, content_id, self.holder, self.run_id, get_settings().claim_lease_s)

    def release(self) -> None:
        with self.engine.begin() as conn:
            sql.release_claims(conn, self.holder)

    def wait_for_any(self, content_ids: list[str], poll_s: float = 1.0) -> None:
        """Return once at least one of these bytes is no longer under a live claim."""
        while True:
            with self.engine.connect() as conn:
                live = sql.live_claims(conn, content_ids)
            if len(live) < len(set(content_ids)):
                return
            time.sleep(poll_s)
