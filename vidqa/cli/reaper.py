"""What a ``vidqa`` command leaves behind when it dies without cleaning up (SIGKILL, an OOM
kill, a crash in C): Prefect's temporary API server, ffmpeg, a local Dask cluster, and its
handle on the embedded Postgres. The command starts this as a separate process in its own
session, holding the write end of a pipe to it; the pipe closes when the command dies, however
it dies, and this process then ends the command's descendants (it watched them while the
command lived: once orphaned they are no longer the command's) and, if the command was the
last user of the embedded Postgres, stops it as pgserver would have at exit. A command that
exits normally says ``bye`` first, and this process does nothing.

Run as a script (``python reaper.py PID PGDATA``), so it imports nothing of vidqa.
"""

from __future__ import annotations

import json
import os
import select
import sys
from pathlib import Path

POLL_S = 0.5


def watch(parent_pid: int) -> dict[int, object] | None:
    """The command's descendants seen while it lived; None when it said bye."""
    import psutil

    try:
        parent = psutil.Process(parent_pid)
    except psutil.NoSuchProcess:
        return {}
    seen: dict[int, psutil.Process] = {}
    while True:
        try:
            for child in parent.children(recursive=True):
                if child.pid != os.getpid():
                    seen.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            pass
        seen = {pid: p for pid, p in seen.items() if p.is_running()}  # is_running also checks pid reuse
        ready, _, _ = select.select([sys.stdin], [], [], POLL_S)
        if ready:
            data = os.read(sys.stdin.fileno(), 64)
            if not data:
                return seen  # the pipe closed: the command is gone
            if b"bye" in data:
                return None


def end_processes(processes: list) -> None:
    import psutil

    alive = [p for p in processes if p.is_running()]
    for p in alive:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, still = psutil.wait_procs(alive, timeout=5)
    for p in still:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def release_embedded_postgres(pgdata: Path, dead_pid: int) -> None:
    """Drop the dead command from pgserver's list of the server's users (under pgserver's
    lock), and stop the server if no live user is left."""
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    import psutil
    from pgserver._commands import pg_ctl
    from pgserver.postgres_server import PostgresServer

    with PostgresServer._lock:
        pids = json.loads(handles.read_text() or "[]")
        if dead_pid not in pids:
            return  # it let go itself
        left = [p for p in pids if p != dead_pid and psutil.pid_exists(p)]
        handles.write_text(json.dumps(left))
        if left or not (pgdata / "postmaster.pid").exists():
            return
        user = "pgserver" if os.geteuid() == 0 else None
        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=60)
        except Exception:  # noqa: BLE001 - already stopped
            pass


def main(argv: list[str]) -> int:
    parent_pid, pgdata = int(argv[1]), Path(argv[2])
    try:
        left = watch(parent_pid)
    except KeyboardInterrupt:
        return 0
    if left is None:
        return 0
    end_processes(list(left.values()))
    release_embedded_postgres(pgdata, parent_pid)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
