"""Postgres' own client programs (psql, pg_dump) on vidqa's database, and the libpq URL that
they, pandas and other tools take."""

from __future__ import annotations

import asyncio
import os
import signal
import shutil
from pathlib import Path
from typing import Optional

from sqlalchemy.engine import make_url


def libpq_url(url: str, *, show_password: bool = False) -> str:
    """``postgresql://user[:password]@host:port/db`` (or ``?host=<socket dir>``), without the
    SQLAlchemy driver suffix; a password is masked as ``***`` unless ``show_password``."""
    u = make_url(url).set(drivername="postgresql")
    if not u.password:
        u = u._replace(password=None)  # the embedded server has none: nothing to mask (set() keeps "")
    return u.render_as_string(hide_password=not show_password)


def bundled_bin_dir() -> Path:
    """The Postgres programs that pgserver ships (the embedded server's own version)."""
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def client_program(name: str, prefer_bundled: bool = False) -> str:
    """``psql``, ``pg_dump``...: from PATH, else pgserver's copy (so a fresh machine has them).
    ``prefer_bundled`` takes pgserver's first (pg_dump must not be older than the server)."""
    bundled = bundled_bin_dir() / name
    on_path = shutil.which(name)
    if prefer_bundled and bundled.is_file():
        return str(bundled)
    if on_path:
        return on_path
    if bundled.is_file():
        return str(bundled)
    raise FileNotFoundError(f"{name} is neither on PATH nor bundled with pgserver ({bundled})")


def socket_path(url: str) -> Optional[Path]:
    """The Unix socket of a socket URL (``?host=/dir``), else None."""
    u = make_url(url)
    host = u.query.get("host") or u.host or ""
    if isinstance(host, tuple):
        host = host[0]
    if not str(host).startswith("/"):
        return None
    return Path(host) / f".s.PGSQL.{u.port or 5432}"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def forward_tcp_to_socket(port: int, socket: Path, ready: Optional[asyncio.Event] = None) -> None:
    """Serve ``127.0.0.1:port`` by forwarding each connection to the server's Unix socket
    (the embedded server listens on no TCP address of its own). Loopback only: anyone on this
    machine who reaches the port is connected as the socket's user."""
    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_unix_connection(str(socket))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, server_writer), _pipe(server_reader, client_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    if ready is not None:
        ready.set()
    async with server:
        await server.serve_forever()


async def forward_until_signalled(port: int, socket: Path, signals=(signal.SIGINT, signal.SIGTERM)) -> None:
    """:func:`forward_tcp_to_socket` until one of ``signals`` arrives, then close the port and
    every forwarded connection. The loop's own signal handlers wake it through its self-pipe
    whichever thread the kernel hands the signal to (``asyncio.run``'s SIGINT handling does
    not: a signal taken by another thread left the loop asleep)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    forwarding = asyncio.create_task(forward_tcp_to_socket(port, socket))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({forwarding, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        for task in (forwarding, stopping):
            task.cancel()
        await asyncio.gather(forwarding, stopping, return_exceptions=True)
    if forwarding.done() and not forwarding.cancelled() and forwarding.exception() is not None:
        raise forwarding.exception()  # the port could not be opened, say


def tcp_url(url: str, port: int) -> str:
    """The libpq URL of the forwarded loopback port."""
    u = make_url(libpq_url(url, show_password=True)).set(host="127.0.0.1", port=port, query={})
    return u.render_as_string(hide_password=False)


def run_env() -> dict[str, str]:
    """The environment for a client program: PGCONNECT_TIMEOUT so a dead server fails fast."""
    return {**os.environ, "PGCONNECT_TIMEOUT": os.environ.get("PGCONNECT_TIMEOUT", "10")}
