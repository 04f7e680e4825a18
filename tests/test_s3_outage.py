"""An object store that goes down between listing and fetching: noticed once per endpoint (a
circuit breaker), not once per object after its own retries; the rerun against the endpoint,
back again, fetches only what is missing (a real moto S3 server; the outage is a real closed
port)."""

import re
import socket
import time
import uuid

import sqlalchemy as sa

from conftest import run_shard
from synthetic import distinct_videos
from vidqa.config import get_settings
from vidqa.db import get_engine
from vidqa.scoring.job import ScorerSpec
from vidqa.storage import ObjectCache, S3Options, Storage
from vidqa.storage import breaker

TECHNICAL = [ScorerSpec("technical", {"sampling": {"n": 2}})]
N = 10


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed


def test_an_endpoint_outage_fails_the_rest_at_once_and_the_rerun_fetches_what_is_missing(
        s3_endpoint, migrated_db, tmp_path):
    prefix = f"outage-{uuid.uuid4().hex[:8]}"
    for path in distinct_videos(tmp_path / "v", N, seconds=1.0):
        s3_endpoint.put(f"{prefix}/{path.name}", path)
    live = s3_endpoint.options()
    refs = Storage(live, ObjectCache(tmp_path / "cache", 1 << 30)).list_videos(f"s3://{s3_endpoint.bucket}/{prefix}")
    assert len(refs) == N
    down = S3Options(**{**live.__dict__, "endpoint_url": closed_port()})
    engine = get_engine(migrated_db)
    breaker.reset()

    started = time.monotonic()
    outcomes = run_shard(engine, refs, TECHNICAL, storage=Storage(down, ObjectCache(tmp_path / "cache", 1 << 30)),
                         ).outcomes
    took = time.monotonic() - started
    assert [o.status for o in outcomes] == ["failed"] * N and all(o.transient for o in outcomes)
    # The first objects' attempts found the endpoint down (3 failed requests in a row, one more
    # for each other decode thread whose request was already under way); their last attempts
    # and every later object were not tried.
    reasons = [o.reason for o in outcomes]
    threads = max(1, get_settings().decode_workers)
    failed_in_a_row = re.compile(rf"not fetched: {re.escape(down.endpoint_url)} is not answering \((\d+) requests "
                                 "in a row failed, the last with EndpointConnectionError")
    counts = [int(m.group(1)) if (m := failed_in_a_row.match(r)) else None for r in reasons]
    assert all(c is not None and 3 <= c <= 3 + threads - 1 for c in counts), reasons
    # Each request to a closed port costs botocore's own retries (about 6 s here): three of
    # them, not 5 attempts x 10 objects.
    assert took < 60, took

    # Back up: the rerun fetches every object once and scores them all.
    cache = ObjectCache(tmp_path / "cache", 1 << 30)
    rerun = run_shard(engine, refs, TECHNICAL, storage=Storage(live, cache)).outcomes
    assert [o.status for o in rerun] == ["scored"] * N
    assert len(cache.entries()) == N
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM videos WHERE status = 'ok'")).scalar_one() == N
