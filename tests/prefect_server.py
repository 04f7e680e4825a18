"""A real `prefect server start`, process workers of its pools, and parent runs started from
the command line, for the tests and benchmarks that deploy and run flows on workers.

The server runs on SQLite under a temporary PREFECT_HOME; `PrefectServer` gives its HTTP API
and the environment of CLI clients and workers pointed at it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

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
        # Generous: with workers, flow-run processes and their scorers loading on two cores,
        # the server's SQLite answers a filter in tens of seconds at worst (a 30 s limit timed out in CI).
        self.http = httpx.Client(base_url=self.api_url, timeout=httpx.Timeout(120.0, connect=10.0))

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


@contextmanager
def running_prefect_server(home: Path) -> Iterator[PrefectServer]:
    """`prefect server start` on a free loopback port, healthy, stopped on exit."""
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


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    with running_prefect_server(tmp_path_factory.mktemp("prefect-server")) as srv:
        yield srv


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




# The parent run as a user starts it from any machine with the API URL: a flow run in its own process.
PARENT = ("import json, sys\n"
          "from flows.score_videos import ScoreVideosParams, score_videos\n"
          "summary = score_videos(ScoreVideosParams.model_validate_json(sys.argv[1]))\n"
          "print('SUMMARY ' + summary.model_dump_json())\n")


def video_set(folder: Path, n: int) -> Path:
    """``n`` distinct videos (their URIs and their bytes differ), made with lavfi."""
    from synthetic import distinct_videos

    distinct_videos(folder, n)
    return folder


class Workers:
    """Process workers of the pool, each in its own session (so a kill takes its children too)."""

    def __init__(self, srv, db_url: str, tmp_path: Path):
        self.srv, self.db_url, self.tmp = srv, db_url, tmp_path
        self.procs: dict[str, subprocess.Popen] = {}

    def env(self, **extra: str) -> dict[str, str]:
        return self.srv.client_env(
            VIDQA_DATABASE_URL=self.db_url, VIDQA_PROJECT_DIR=str(REPO), VIDQA_HOME=str(self.tmp / "vidqa-home"),
            PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_LOGGING_LEVEL="INFO", **extra,
        )

    def start(self, name: str, limit: int) -> None:
        cwd = self.tmp / name  # not the checkout: the deployment's pull step enters it
        cwd.mkdir()
        with open(self.tmp / f"{name}.log", "wb") as log:
            self.procs[name] = subprocess.Popen(
                [*prefect_cmd(), "worker", "start", "--pool", "vidqa", "--name", name, "--limit", str(limit)],
                cwd=cwd, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    def kill(self, name: str) -> list[int]:
        """SIGKILL a worker and every process below it (its flow runs run in sessions of their own)."""
        proc = self.procs[name]
        victims = [proc.pid, *_descendants(proc.pid)]
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=10)
        return victims

    def logs(self) -> str:
        return "\n".join(f"--- {n} ---\n{tail(self.tmp / f'{n}.log', 3000)}" for n in self.procs)

    def stop(self) -> None:
        for proc in self.procs.values():
            stop_group(proc, grace=10)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def start_parent(workers: Workers, params: dict, **env: str) -> subprocess.Popen:
    """A score-videos run started from the command line (with the workers' database and API)."""
    return subprocess.Popen([sys.executable, "-c", PARENT, json.dumps(params)], cwd=REPO,
                            env=workers.env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def parent_summary(proc: subprocess.Popen, workers: Workers, timeout: float) -> dict:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        shards = [(r["name"], r["state_name"], r["state"]["message"]) for r in workers.srv.post(
            "/flow_runs/filter", {"flow_runs": {"tags": {"all_": ["vidqa-shard"]}}, "limit": 200})]
        raise AssertionError(f"parent run did not finish in {timeout} s\nshard runs: {shards}\n"
                             f"automations: {workers.srv.post('/automations/filter', {})}\n"
                             f"{out[-6000:]}\n{workers.logs()}")
    lines = [line for line in out.splitlines() if line.startswith("SUMMARY ")]
    assert proc.returncode == 0 and lines, f"parent exited {proc.returncode}\n{out[-6000:]}\n{workers.logs()}"
    return json.loads(lines[-1][len("SUMMARY "):])


