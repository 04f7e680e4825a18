"""psql that just works: `vidqa db url` as libpq tools take it, `db shell`, `db dump` and
`db serve` on the embedded server (pgserver, a fresh VIDQA_HOME), psql from PATH or
pgserver's own copy, and `db downgrade` asking first."""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, VIDEOS, vidqa_cli
from vidqa.db.clients import bundled_bin_dir


def cli_env(extra: dict[str, str]) -> dict[str, str]:
    """os.environ with ``extra``; an empty value unsets the variable (as in ``vidqa_cli``)."""
    return {k: v for k, v in {**os.environ, **extra}.items() if v != ""}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def embedded_home(tmp_path):
    """A fresh VIDQA_HOME on the embedded server, with one scored video; env for the CLI. Its
    own Prefect home too, as on a fresh machine (the first command starts Prefect's
    ephemeral server on it)."""
    env = {"VIDQA_HOME": str(tmp_path / "home"), "VIDQA_DATABASE_URL": "", "PREFECT_HOME": str(tmp_path / "prefect")}
    vidqa_cli("run", str(VIDEOS / "video_90.mov"), "--frames", "2", env=env)
    return env


def no_psql_path(tmp_path) -> str:
    """A PATH with vidqa and python but no psql or pg_dump: the bundled copies must serve."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("vidqa", "python3"):
        (bin_dir / name).symlink_to(shutil.which(name))
    return str(bin_dir)


def test_db_url_is_a_libpq_url_and_hides_a_password(tmp_path):
    env = {"VIDQA_DATABASE_URL": "postgresql+psycopg://bob:s3cret@db.example:5433/scores"}
    assert vidqa_cli("db", "url", env=env).stdout.strip() == "postgresql://bob:***@db.example:5433/scores"
    assert vidqa_cli("db", "url", "--show-password", env=env).stdout.strip() == \
        "postgresql://bob:s3cret@db.example:5433/scores"
    assert vidqa_cli("db", "url", "--sqlalchemy", env=env).stdout.strip() == \
        "postgresql+psycopg://bob:***@db.example:5433/scores"


def test_db_shell_runs_sql_with_the_bundled_psql_on_a_fresh_machine(embedded_home, tmp_path):
    env = {**embedded_home, "PATH": no_psql_path(tmp_path)}
    out = vidqa_cli("db", "shell", "-c", "select count(*) AS n from videos", env=env).stdout
    assert out.split() == ["n", "---", "1", "(1", "row)"]
    url = vidqa_cli("db", "url", env=embedded_home).stdout.strip()
    assert url.startswith("postgresql://postgres@/vidqa?host=") and "+psycopg" not in url

    dump = tmp_path / "vidqa.sql"
    vidqa_cli("db", "dump", str(dump), env=env)
    text = dump.read_text()
    assert "CREATE TABLE public.videos" in text and "video_90.mov" in text


def test_psql_reaches_the_embedded_server_while_db_serve_runs(embedded_home, tmp_path):
    psql = shutil.which("psql") or str(bundled_bin_dir() / "psql")
    port = free_port()
    env = cli_env(embedded_home)
    serve = subprocess.Popen([shutil.which("vidqa"), "db", "serve", "--port", str(port)], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while not any("Ctrl-C" in line for line in lines) and time.monotonic() < deadline:
            lines.append(serve.stdout.readline())
        assert any("Ctrl-C" in line for line in lines), lines
        url = subprocess.run([shutil.which("vidqa"), "db", "url"], env=env, capture_output=True, text=True,
                             check=True).stdout.strip()
        # The url process has exited; the server is still up because `db serve` holds it.
        one = subprocess.run([psql, url, "-At", "-c", "select 1"], capture_output=True, text=True, timeout=60)
        assert one.returncode == 0 and one.stdout.strip() == "1", one.stderr
        tcp = subprocess.run([psql, f"postgresql://postgres@127.0.0.1:{port}/vidqa", "-At", "-c",
                              "select uri from videos"],
                             capture_output=True, text=True, timeout=60)

        assert tcp.returncode == 0 and tcp.stdout.strip().endswith("video_90.mov"), tcp.stderr
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            out, _ = serve.communicate(timeout=120)
        except subprocess.TimeoutExpired:  # say where it hung, then clean up
            serve.kill()
            out, _ = serve.communicate(timeout=30)
            raise AssertionError(f"`vidqa db serve` still running 120 s after Ctrl-C; it printed:\n{out}")
    assert serve.returncode == 0, out
    # Nobody holds the embedded server any more: it stopped with `db serve`.
    pid_file = Path(embedded_home["VIDQA_HOME"]) / "pgdata" / "postmaster.pid"
    deadline = time.monotonic() + 30
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not pid_file.exists()
    gone = subprocess.run([psql, url, "-At", "-c", "select 1"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PGCONNECT_TIMEOUT": "5"})
    assert gone.returncode != 0


def test_the_embedded_server_gets_its_shared_buffers(tmp_path):
    """A server vidqa starts is restarted once with VIDQA_EMBEDDED_SHARED_BUFFERS (vector
    indexes past Postgres' 128MB default are read from the OS on every lookup), and stops
    when the command ends."""
    env = {"VIDQA_HOME": str(tmp_path / "home"), "VIDQA_DATABASE_URL": "", "VIDQA_EMBEDDED_SHARED_BUFFERS": "192MB"}
    for _ in range(2):  # a fresh data directory, then a stopped one
        out = vidqa_cli("db", "shell", "-A", "-t", "-c", "show shared_buffers", env=env).stdout
        assert out.split() == ["192MB"]
    assert not (tmp_path / "home" / "pgdata" / "postmaster.pid").exists()  # stopped at exit


def test_downgrade_asks_first(database_url):
    from vidqa.db.migrate import current_revision, head_revision, upgrade

    upgrade("head", database_url)
    env = cli_env({"VIDQA_DATABASE_URL": database_url})
    refused = subprocess.run([shutil.which("vidqa"), "db", "downgrade", "base"], input="n\n", env=env,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "dropped with their data" in refused.stdout + refused.stderr
    assert current_revision(database_url) == head_revision()
    no_terminal = subprocess.run([shutil.which("vidqa"), "db", "downgrade", "base"], stdin=subprocess.DEVNULL,
                                 env=env, capture_output=True, text=True, timeout=120)
    assert no_terminal.returncode != 0 and current_revision(database_url) == head_revision()
    vidqa_cli("db", "downgrade", "base", "--yes")
    assert current_revision(database_url) is None
