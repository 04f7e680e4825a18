"""Connect to Postgres: ``VIDQA_DATABASE_URL`` when set, else an embedded pgserver."""

from __future__ import annotations

import threading
import warnings
from functools import lru_cache

import sqlalchemy as sa
from psycopg import sql
from sqlalchemy.engine import Engine, make_url

from vidqa.config import get_settings

EMBEDDED_DB_NAME = "vidqa"
_embedded_lock = threading.Lock()
_embedded_servers: dict[str, object] = {}


def _normalise(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` URLs."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def embedded_server_url() -> str:
    """Start (or join) the embedded Postgres under ``VIDQA_HOME`` and return its URL.

    pgserver reference-counts processes that use the data directory and stops the
    server when the last one exits, so concurrent CLI invocations share one server.
    """
    import pgserver

    pgdata = get_settings().pgdata
    key = str(pgdata)
    with _embedded_lock:
        srv = _embedded_servers.get(key)
        if srv is None:
            pgdata.mkdir(parents=True, exist_ok=True)
            started_here = not _server_running(pgdata)
            with warnings.catch_warnings():
                # platformdirs warns about XDG_RUNTIME_DIR on headless machines; harmless here.
                warnings.simplefilter("ignore")
                srv = pgserver.get_server(pgdata)
            _embedded_servers[key] = srv
            if started_here:
                _size_shared_buffers(srv)
            exists = srv.psql(
                f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DB_NAME}';"
            )
            if "1 row" not in exists:
                srv.psql(f"CREATE DATABASE {EMBEDDED_DB_NAME};")
    base = make_url(srv.get_uri())  # postgresql://postgres:@/postgres?host=<socket dir>
    return _normalise(base.set(database=EMBEDDED_DB_NAME).render_as_string(hide_password=False))


def _server_running(pgdata) -> bool:
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    return info is not None and info.is_running()


def _size_shared_buffers(srv) -> None:
    """Give a server this process just started the configured ``shared_buffers`` (a restart:
    nobody else is connected yet), so vector indexes stay in Postgres' buffers."""
    import psycopg
    from pgserver._commands import pg_ctl
    from pgserver.utils import PostmasterInfo

    target = get_settings().embedded_shared_buffers
    if not target:
        return
    with psycopg.connect(srv.get_uri(), autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER SYSTEM SET shared_buffers = {}").format(sql.Literal(target)))
        conn.execute("SELECT pg_reload_conf()")
        pending = conn.execute("SELECT pending_restart FROM pg_settings WHERE name = 'shared_buffers'").fetchone()[0]
    if not pending:
        return
    with srv._lock:  # pgserver's own lock on the data directory, as its start and stop take it
        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=srv.pgdata, user=srv.system_user, timeout=30)
        srv._postmaster_info = PostmasterInfo.read_from_pgdata(srv.pgdata)  # the new postmaster, for its stop


def database_url() -> str:
    """The URL in use: the configured server's, else the embedded one's."""
    configured = get_settings().database_url
    return _normalise(configured) if configured else embedded_server_url()


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    # A server that does not answer a new connection in 10 s is as good as gone (see health.py).
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, future=True,
                            connect_args={"connect_timeout": 10})


def get_engine(url: str | None = None) -> Engine:
    return _engine_for(url or database_url())
