"""A SIGKILLed `vidqa run` leaves nothing running: not Prefect's temporary API server, not
ffmpeg, not the embedded Postgres it started; and the next command closes its run as crashed.
Real processes throughout: the installed CLI on a fresh VIDQA_HOME and PREFECT_HOME."""

import os
import shutil
import signal
import socket
import subprocess
import time

import psutil
import sqlalchemy as sa

from conftest import REPO, vidqa_cli
from synthetic import distinct_videos


def cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:  # gone, or a zombie waiting for its parent
        return ""


def running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_killed_run_leaves_no_process_behind_and_the_next_command_closes_it(tmp_path):
    distinct_videos(tmp_path / "v", 12, seconds=4.0)
    env = {**os.environ, "VIDQA_HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "prefect")}
    for own_server in ("VIDQA_DATABASE_URL", "PREFECT_API_URL"):
        env.pop(own_server, None)  # the zero-configuration path: it starts both servers itself
    victim = subprocess.Popen([shutil.which("vidqa"), "run", str(tmp_path / "v"), "--sampling", "all",
                               "--shard-size", "1"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cli = psutil.Process(victim.pid)
    postmaster_pid = tmp_path / "home" / "pgdata" / "postmaster.pid"
    deadline = time.monotonic() + 240
    children: list[psutil.Process] = []
    while time.monotonic() < deadline and victim.poll() is None:
        children = cli.children(recursive=True)
        if any("uvicorn" in cmdline(c) for c in children) and postmaster_pid.exists():
            break
        time.sleep(0.2)
    # Kill it mid-scoring: once its run is open and some scores are written.
    url = f"postgresql+psycopg://postgres:@/vidqa?host={tmp_path / 'home' / 'pgdata'}"
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    while time.monotonic() < deadline and victim.poll() is None:
        try:
            with engine.connect() as conn:
                if conn.execute(sa.text("SELECT count(*) FROM scores")).scalar_one() > 0:
                    break
        except sa.exc.SQLAlchemyError:  # not created or migrated yet
            pass
        time.sleep(0.3)
    engine.dispose()
    assert victim.poll() is None, "the run ended before it could be killed"
    children = cli.children(recursive=True)
    started = {cmdline(c).split(" -m ")[-1].split()[0] for c in children if cmdline(c)}
    assert "uvicorn" in started  # Prefect's temporary API server, among the reaper (and ffmpeg)
    postgres = psutil.Process(int(postmaster_pid.read_text().split()[0]))
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)

    left = children + [postgres]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(running(p) for p in left):
        time.sleep(0.5)
    assert [(p.pid, cmdline(p)[:80]) for p in left if running(p)] == []

    # The next command (any that opens the database) says what happened to the run.
    vidqa_cli("videos", env={**{k: env.get(k, "") for k in ("VIDQA_DATABASE_URL", "PREFECT_API_URL")},
                             "VIDQA_HOME": env["VIDQA_HOME"], "PREFECT_HOME": env["PREFECT_HOME"]})
    shown = vidqa_cli("db", "shell", "-c", "SELECT status || ' | ' || coalesce(error, '') FROM runs", "-A", "-t",
                      env={"VIDQA_DATABASE_URL": "", "PREFECT_API_URL": "", "VIDQA_HOME": env["VIDQA_HOME"]})
    assert shown.stdout.strip() == f"crashed | its process (pid {victim.pid} on {socket.gethostname()}) is gone", shown.stdout + shown.stderr
