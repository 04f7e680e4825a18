"""Shared fixtures: real Postgres (pgserver or VIDQA_DATABASE_URL), Prefect's test harness,
the shared sample videos, and bad inputs made with the real ffmpeg."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO / ".." / "shared").resolve()
VIDEOS = SHARED / "videos"
SAMPLE_VIDEOS = sorted(p for p in VIDEOS.iterdir() if p.suffix in {".mp4", ".mkv", ".mov"})


def run_ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="session", autouse=True)
def _isolated_homes(tmp_path_factory):
    """Keep Prefect's and vidqa's state out of the user's home."""
    prefect_home = tmp_path_factory.mktemp("prefect-home")
    os.environ["PREFECT_HOME"] = str(prefect_home)
    os.environ.setdefault("VIDQA_HOME", str(tmp_path_factory.mktemp("vidqa-home")))
    yield


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory) -> str:
    """A real Postgres server: VIDQA_DATABASE_URL's when given, else an embedded pgserver."""
    from sqlalchemy.engine import make_url

    given = os.environ.get("VIDQA_DATABASE_URL")
    if given:
        url = make_url(given)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)
    import pgserver

    srv = pgserver.get_server(tmp_path_factory.mktemp("pg"))
    url = make_url(srv.get_uri()).set(drivername="postgresql+psycopg")
    yield url.render_as_string(hide_password=False)
    srv.cleanup()


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``admin_url``, dropped on exit."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    name = f"vidqa_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        from vidqa.db.engine import _engine_for

        _engine_for(url).dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def database_url(pg_admin_url, monkeypatch) -> str:
    """A fresh, empty database on the real server for one test; exported as VIDQA_DATABASE_URL."""
    from vidqa.config import reload_settings

    with fresh_database(pg_admin_url) as url:
        monkeypatch.setenv("VIDQA_DATABASE_URL", url)
        reload_settings()
        yield url
    reload_settings()


@pytest.fixture
def migrated_db(database_url) -> str:
    from vidqa.db import upgrade

    upgrade("head", database_url)
    return database_url


@pytest.fixture(scope="session")
def prefect_api_url():
    """Prefect's own test harness: a temporary server with a throwaway database."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory) -> dict[str, Path]:
    """A zero-byte file, a text file named .mp4, and an audio-only file."""
    d = tmp_path_factory.mktemp("bad-inputs")
    empty = d / "empty.mp4"
    empty.write_bytes(b"")
    text = d / "notes.mp4"
    text.write_text("this is not a video\n")
    audio = d / "audio_only.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(audio))
    return {"empty": empty, "text": text, "audio": audio}


@pytest.fixture
def video_dir(tmp_path, bad_inputs) -> Path:
    """The shared sample videos (linked, not copied) plus the bad inputs, in one folder."""
    d = tmp_path / "videos"
    d.mkdir()
    for src in SAMPLE_VIDEOS:
        (d / src.name).symlink_to(src)
    for src in bad_inputs.values():
        (d / src.name).symlink_to(src)
    return d


def vidqa_cli(*args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 300):
    """Run the installed ``vidqa`` command in a subprocess, as a user would."""
    full_env = {**os.environ, **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v != ""}  # "" in env means: unset it
    proc = subprocess.run(
        [shutil.which("vidqa") or "vidqa", *args],
        capture_output=True, text=True, env=full_env, timeout=timeout, cwd=REPO,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"vidqa {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


class S3Endpoint:
    """A real S3 HTTP endpoint on loopback (moto's server mode) with IAM enforced.

    ``key_id``/``secret`` belong to an IAM user allowed everything on S3 except reading
    objects under ``private/``: a real AccessDenied, not a simulated one.
    """

    bucket = "vidqa-test"

    def __init__(self, url: str, key_id: str, secret: str):
        self.url, self.key_id, self.secret = url, key_id, secret
        import boto3

        self.client = boto3.client(
            "s3", endpoint_url=url, region_name="us-east-1",
            aws_access_key_id=key_id, aws_secret_access_key=secret,
        )

    def put(self, key: str, path_or_bytes) -> str:
        body = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)
        return f"s3://{self.bucket}/{key}"

    def options(self):
        from pydantic import SecretStr
        from vidqa.storage import S3Options

        return S3Options(endpoint_url=self.url, region="us-east-1",
                         access_key_id=SecretStr(self.key_id), secret_access_key=SecretStr(self.secret))

    def env(self) -> dict[str, str]:
        return {"VIDQA_S3_ENDPOINT_URL": self.url, "VIDQA_S3_REGION": "us-east-1",
                "VIDQA_S3_ACCESS_KEY_ID": self.key_id, "VIDQA_S3_SECRET_ACCESS_KEY": self.secret}


# Requests moto serves before it starts enforcing IAM: exactly the setup calls below.
_SETUP_ACTIONS = 4


@pytest.fixture(scope="session")
def s3_endpoint() -> S3Endpoint:
    import json
    import socket
    import sys
    import time
    import urllib.request

    import boto3

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(_SETUP_ACTIONS)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("moto server did not start")
    admin = dict(endpoint_url=url, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
    boto3.client("s3", **admin).create_bucket(Bucket=S3Endpoint.bucket)
    iam = boto3.client("iam", **admin)
    iam.create_user(UserName="vidqa")
    key = iam.create_access_key(UserName="vidqa")["AccessKey"]
    iam.put_user_policy(UserName="vidqa", PolicyName="no-private", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {"Effect": "Deny", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{S3Endpoint.bucket}/private/*"},
        ],
    }))
    yield S3Endpoint(url, key["AccessKeyId"], key["SecretAccessKey"])
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """Config paths of tiny random CLIPs: 32-d (EMScore, similarity) and 768-d (LAION head)."""
    import json

    from clip_fixtures import tiny_clip_config

    d = tmp_path_factory.mktemp("tiny-clip")
    paths = {}
    for name, dim in (("vidqa-tiny-b32", 32), ("vidqa-tiny-l14", 768)):
        cfg = tiny_clip_config()
        cfg["embed_dim"] = dim
        (d / f"{name}.json").write_text(json.dumps(cfg))
        paths[dim] = str(d / f"{name}.json")
    return paths


@pytest.fixture(scope="session")
def tiny_clip_512(tmp_path_factory):
    """A tiny random CLIP (open_clip's ViT-B-32 config shrunk) with ViT-B's 512-d embeddings:
    the width the HNSW index of revision 0013 covers."""
    from clip_fixtures import tiny_clip_config

    cfg = tiny_clip_config()
    cfg["embed_dim"] = 512
    path = tmp_path_factory.mktemp("tiny-clip-512") / "vidqa-tiny-512.json"
    path.write_text(json.dumps(cfg))
    return str(path)


@pytest.fixture(scope="session")
def audio_models(tmp_path_factory):
    """Folders of a tiny random speech recogniser and audio classifier (transformers)."""
    from audio_fixtures import write_tiny_asr, write_tiny_audio_classifier

    d = tmp_path_factory.mktemp("audio-models")
    return {"asr": str(write_tiny_asr(d / "asr")), "classifier": str(write_tiny_audio_classifier(d / "cls"))}


def run_shard(engine, refs, specs, run_id=None, clip_spec=None, storage=None):
    """Score ``refs`` as one shard job through the library (no Prefect)."""
    from vidqa.scoring.job import ShardJob
    from vidqa.scoring.shard import score_shard
    from vidqa.video.clips import ClipSpec

    job = ShardJob(run_id=str(run_id) if run_id else None, refs=refs, scorers=specs, clips=clip_spec or ClipSpec())
    return score_shard(engine, job, storage)


@pytest.fixture
def encoded_frames(monkeypatch) -> list[int]:
    """The number of frames of each CLIP image-encoder call the CLIP scorers make (the real
    encoder runs; only the calls are counted)."""
    import vidqa.scorers.clip_based as clip_based

    calls: list[int] = []
    real_encode = clip_based.encode_pixels

    def counting(clip, pixels, batch_size=64):
        calls.append(pixels.shape[0])
        return real_encode(clip, pixels, batch_size)

    monkeypatch.setattr(clip_based, "encode_pixels", counting)
    return calls
