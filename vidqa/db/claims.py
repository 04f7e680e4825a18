"""Claims on videos being scored: the statements behind :mod:`vidqa.scoring.claims`. Times
are the database's (``now()``), so claimants on hosts with skewed clocks agree on expiry."""

from __future__ import annotations

import uuid
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection

_TAKE = sa.text("""
    INSERT INTO video_claims AS c (content_id, holder, run_id, expires_at)
    VALUES (:content_id, :holder, :run_id, now() + make_interval(secs => :lease_s))
    ON CONFLICT (content_id) DO UPDATE
        SET holder = excluded.holder, run_id = excluded.run_id, claimed_at = now(), expires_at = excluded.expires_at
        WHERE c.expires_at < now() OR c.holder = excluded.holder
    RETURNING holder
""")


def take_claim(conn: Connection, content_id: str, holder: str, run_id: Optional[uuid.UUID],
               lease_s: float) -> Optional[str]:
    """Claim the bytes for ``holder`` (again, if it holds them; or over a lapsed claim). None
    when claimed; else who holds the live claim."""
    if conn.execute(_TAKE, {"content_id": content_id, "holder": holder, "run_id": run_id,
                            "lease_s": lease_s}).first() is not None:
        return None
    other = conn.execute(sa.text("SELECT holder FROM video_claims WHERE content_id = :c"),
                         {"c": content_id}).scalar()
    return other or "a claim released just now"


def renew_claims(conn: Connection, holders: list[str], lease_s: float) -> int:
    if not holders:
        return 0
    return conn.execute(sa.text("UPDATE video_claims SET expires_at = now() + make_interval(secs => :lease_s) "
                                "WHERE holder = ANY(:holders)"), {"holders": holders, "lease_s": lease_s}).rowcount


def release_claims(conn: Connection, holder: str) -> int:
    return conn.execute(sa.text("DELETE FROM video_claims WHERE holder = :h"), {"h": holder}).rowcount


def live_claims(conn: Connection, content_ids: list[str]) -> set[str]:
    """Which of these bytes a live (unexpired) claim holds."""
    if not content_ids:
        return set()
    return set(conn.execute(sa.text("SELECT content_id FROM video_claims WHERE content_id = ANY(:c) "
                                    "AND expires_at >= now()"), {"c": content_ids}).scalars())
