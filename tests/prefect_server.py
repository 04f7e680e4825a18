"""A real `prefect server start` for tests that deploy and run flows on workers.

The server runs on SQLite under a temporary PREFECT_HOME; `PrefectServer` gives its HTTP API
and the environment of CLI clients and workers pointed at it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prefect_cmd() -> list[str]:
    exe = shutil.which("prefect")
    return [exe] if exe else [sys.executable, "-m", "prefect"]


def tail(path: Path, n: int = 6000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


class PrefectServer:
    """A `prefect server start` subprocess and the environment of its CLI clients."""

    def __init__(self, home: Path, port: int):
        self.home, self.port = home, port
        self.api_url = f"http://127.0.0.1:{port}/api"
        self.log = home / "server.log"
        self.http = httpx.Client(base_url=self.api_url, timeout=30)

    def client_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API_", "VIDQA_"))}
        env.update(PREFECT_API_URL=self.api_url, PREFECT_HOME=str(self.home / "client"),
                   PREFECT_SERVER_ANALYTICS_ENABLED="false")
        env.update(extra)
        return env

    def cli(self, *args: str, env: dict[str, str] | None = None, cwd: Path = REPO, timeout: float = 180):
        proc = subprocess.run([*prefect_cmd(), *args], cwd=cwd, env=env or self.client_env(),
                              capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"prefect {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def get(self, path: str, **kw):
        r = self.http.get(path, **kw)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: dict):
        r = self.http.post(path, json=body)
        assert r.status_code < 300, f"POST {path} -> {r.status_code}: {r.text}"
        return r.json() if r.content else None


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-server")
    srv = PrefectServer(home, free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
    env.update(
        PREFECT_HOME=str(home / "server-home"),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_LOGGING_LEVEL="INFO",
    )
    with open(srv.log, "wb") as log:
        proc = subprocess.Popen(
            [*prefect_cmd(), "server", "start", "--host", "127.0.0.1", "--port", str(srv.port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"prefect server exited {proc.returncode}\n{tail(srv.log)}"
            try:
                if httpx.get(f"{srv.api_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"prefect server not healthy after 120 s\n{tail(srv.log)}"
            time.sleep(0.5)
        yield srv
    finally:
        srv.http.close()
        stop_group(proc)


def stop_group(proc: subprocess.Popen, grace: float = 20) -> None:
    """Terminate a process started with start_new_session=True and all of its children."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


