"""S3 sources against a real S3 endpoint on loopback (moto server mode, IAM enforced)."""

import hashlib
import json
import os
import uuid

import numpy as np
import pytest
import sqlalchemy as sa

from conftest import VIDEOS, vidqa_cli
from vidqa.errors import VideoError
from vidqa.video.probe import probe_video
from vidqa.video.sampling import SamplingSpec
from vidqa.storage import ObjectCache, Storage, VideoRef
from vidqa.storage.cache import CacheIntegrityError


def _storage(s3_endpoint, tmp_path, max_bytes=1 << 30) -> Storage:
    return Storage(s3_endpoint.options(), ObjectCache(tmp_path / "cache", max_bytes), base_delay_s=0.01)


def test_same_frames_from_s3_and_disk(s3_endpoint, tmp_path):
    prefix = f"frames-{uuid.uuid4().hex[:8]}"
    names = ["goldeneye-vfr-drop3.mp4", "issue-134-rotate.mp4", "flipping_a_pancake.mkv"]
    for name in names:
        s3_endpoint.put(f"{prefix}/sub/{name}", VIDEOS / name)
    s3_endpoint.put(f"{prefix}/README.txt", b"not a video")
    storage = _storage(s3_endpoint, tmp_path)

    refs = storage.list_videos(f"s3://{s3_endpoint.bucket}/{prefix}")
    assert [r.uri for r in refs] == sorted(f"s3://{s3_endpoint.bucket}/{prefix}/sub/{n}" for n in names)
    spec = SamplingSpec(method="uniform", n=8)
    for ref in refs:
        disk = VIDEOS / ref.uri.rsplit("/", 1)[1]
        assert ref.size == disk.stat().st_size
        # Identity comes from the listing: the ETag is the MD5 of a single-part upload.
        assert storage.content_id(ref) == "etag:" + hashlib.md5(disk.read_bytes()).hexdigest()
        with storage.local_file(ref) as path:
            assert path.startswith(str(tmp_path / "cache"))
            remote = spec.sample(path, probe_video(path))
        local = spec.sample(str(disk), probe_video(str(disk)))
        np.testing.assert_array_equal(remote.array, local.array)
        np.testing.assert_array_equal(remote.indices, local.indices)
        np.testing.assert_array_equal(remote.timestamps, local.timestamps)


def test_cache_reuses_fetched_objects_across_storages(s3_endpoint, tmp_path):
    uri = s3_endpoint.put(f"reuse-{uuid.uuid4().hex[:8]}/a.mp4", VIDEOS / "video_90.mov")
    (ref,) = _storage(s3_endpoint, tmp_path).list_videos(uri)
    with _storage(s3_endpoint, tmp_path).local_file(ref) as path:
        first = os.stat(path)
    # Another process's Storage on the same cache directory: no second download.
    with _storage(s3_endpoint, tmp_path).local_file(ref) as path:
        second = os.stat(path)
    assert (first.st_ino, first.st_size) == (second.st_ino, second.st_size)
    # A copy of the same bytes under another key is the same cache entry.
    copy_uri = s3_endpoint.put(f"reuse-{uuid.uuid4().hex[:8]}/copy.mp4", VIDEOS / "video_90.mov")
    (copy,) = _storage(s3_endpoint, tmp_path).list_videos(copy_uri)
    with _storage(s3_endpoint, tmp_path).local_file(copy) as path:
        assert os.stat(path).st_ino == first.st_ino


def test_cache_is_bounded_lru_and_keeps_files_in_use(s3_endpoint, tmp_path):
    prefix = f"lru-{uuid.uuid4().hex[:8]}"
    files = ["video_90.mov", "counter.mp4", "videoscore_video1.mp4"]
    for name in files:
        s3_endpoint.put(f"{prefix}/{name}", VIDEOS / name)
    a, b, c = ((VIDEOS / n).stat().st_size for n in files)
    # Room for the held file and one other, not for all three.
    bound = max(a + b, a + c)
    storage = _storage(s3_endpoint, tmp_path, max_bytes=bound)
    refs = [r for n in files for r in storage.list_videos(f"s3://{s3_endpoint.bucket}/{prefix}/{n}")]

    with storage.local_file(refs[0]) as held:
        for ref in refs[1:]:
            with storage.local_file(ref):
                pass
        # The held file was the least recently used but is in use: the next one went.
        assert os.path.exists(held)
        assert sorted(p.stat().st_size for p in storage.cache.entries()) == sorted([a, c])
        assert storage.cache.size_bytes() <= bound

    tiny = _storage(s3_endpoint, tmp_path, max_bytes=1)
    with tiny.local_file(refs[0]) as held:
        with tiny.local_file(refs[1]):
            pass
        assert os.path.exists(held)  # pinned files survive even a bound they exceed
    tiny.cache.evict()
    assert tiny.cache.entries() == []


def test_torn_download_is_rejected_and_never_cached(tmp_path):
    cache = ObjectCache(tmp_path / "cache", 1 << 20)
    payload = b"0123456789" * 100
    ref = VideoRef(uri="s3://b/x.mp4", size=len(payload), etag=hashlib.md5(payload).hexdigest())
    with pytest.raises(CacheIntegrityError, match="bytes"):
        with cache.open(ref, lambda tmp: open(tmp, "wb").write(payload[:-10])):
            pass
    with pytest.raises(CacheIntegrityError, match="MD5"):
        with cache.open(ref, lambda tmp: open(tmp, "wb").write(payload[::-1])):
            pass
    assert cache.entries() == []
    with cache.open(ref, lambda tmp: open(tmp, "wb").write(payload)) as path:
        assert open(path, "rb").read() == payload


def test_missing_and_denied_objects_are_clear_errors(s3_endpoint, tmp_path):
    storage = _storage(s3_endpoint, tmp_path)
    folder = f"private/{uuid.uuid4().hex[:8]}"
    s3_endpoint.put(f"{folder}/v.mp4", VIDEOS / "video_90.mov")
    (denied,) = storage.list_videos(f"s3://{s3_endpoint.bucket}/{folder}/")  # listing is allowed, reading is not
    with pytest.raises(VideoError, match="permission denied") as info:
        with storage.local_file(denied):
            pass
    assert info.value.stage == "fetch"
    missing = VideoRef(uri=f"s3://{s3_endpoint.bucket}/nowhere/{uuid.uuid4().hex}.mp4")
    with pytest.raises(VideoError, match="object not found"):
        storage.content_id(missing)
    with pytest.raises(FileNotFoundError):
        storage.list_videos(f"s3://{s3_endpoint.bucket}/no-such-prefix-{uuid.uuid4().hex}/")


def summary_count(stdout: str, label: str) -> int:
    """A count from the run summary table the CLI prints."""
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 2 and cells[1] == label:
            return int(cells[2])
    raise AssertionError(f"no {label!r} row in:\n{stdout}")


def test_cli_scores_an_s3_manifest_and_records_missing_and_denied(s3_endpoint, migrated_db, prefect_api_url, tmp_path):
    """`vidqa run` on an S3 manifest: scored objects, a missing object, a denied object;
    the secret key never reaches the database."""
    prefix = f"cli-{uuid.uuid4().hex[:8]}"
    ok = s3_endpoint.put(f"{prefix}/video_90.mov", VIDEOS / "video_90.mov")
    s3_endpoint.put(f"{prefix}/counter.mp4", VIDEOS / "counter.mp4")
    denied = s3_endpoint.put(f"private/{prefix}.mp4", VIDEOS / "counter.mp4")
    manifest = "\n".join(json.dumps(row) for row in [
        {"video_path": "video_90.mov", "candidate": "a phone video"},
        {"video_path": "counter.mp4", "reference": ["numbers", "a counter"]},
        {"video_path": "gone.mp4"},
        {"video_path": denied},
    ])
    manifest_uri = s3_endpoint.put(f"{prefix}/manifest.jsonl", manifest.encode())
    env = {**s3_endpoint.env(), "VIDQA_HOME": str(tmp_path / "home"), "PREFECT_API_URL": prefect_api_url}
    proc = vidqa_cli("run", manifest_uri, "--frames", "4", env=env)
    assert summary_count(proc.stdout, "videos found") == 4
    assert summary_count(proc.stdout, "scored now") == 2
    assert summary_count(proc.stdout, "failed") == 2
    from vidqa.db import get_engine

    with get_engine(migrated_db).connect() as conn:
        rows = {r.uri: r for r in conn.execute(sa.text("SELECT uri, status, failure_reason, content_id FROM videos"))}
        dump = " ".join(str(v) for t in ("runs", "videos", "scores", "scorer_configs")
                        for r in conn.execute(sa.text(f"SELECT * FROM {t}")) for v in r)
    assert rows[ok].status == "ok" and rows[ok].content_id.startswith("etag:")
    assert rows[f"s3://{s3_endpoint.bucket}/{prefix}/counter.mp4"].status == "ok"
    assert rows[f"s3://{s3_endpoint.bucket}/{prefix}/gone.mp4"].failure_reason.startswith("object not found")
    assert rows[denied].failure_reason.startswith("permission denied")
    assert s3_endpoint.secret not in dump and s3_endpoint.secret not in proc.stdout + proc.stderr

    # The rerun finds everything finished and downloads nothing new.
    cache_files = sorted(p.name for p in (tmp_path / "home" / "cache").rglob("*") if p.is_file())
    again = vidqa_cli("run", manifest_uri, "--frames", "4", env=env)
    assert summary_count(again.stdout, "already scored (skipped)") == 2
    assert summary_count(again.stdout, "scored now") == 0
    assert sorted(p.name for p in (tmp_path / "home" / "cache").rglob("*") if p.is_file()) == cache_files
    with get_engine(migrated_db).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM videos")).scalar() == 4


def test_flow_reads_s3_with_a_prefect_aws_credentials_block(s3_endpoint, migrated_db, prefect_api_url, tmp_path, monkeypatch):
    """Credentials come from a Prefect AwsCredentials block named in the parameters; only
    the name is stored with the run."""
    from prefect_aws import AwsCredentials
    from prefect_aws.client_parameters import AwsClientParameters

    from flows.score_videos import ScoreVideosParams, score_videos

    block = f"vidqa-s3-{uuid.uuid4().hex[:8]}"
    AwsCredentials(
        aws_access_key_id=s3_endpoint.key_id, aws_secret_access_key=s3_endpoint.secret, region_name="us-east-1",
        aws_client_parameters=AwsClientParameters(endpoint_url=s3_endpoint.url),
    ).save(block)
    for var in ("VIDQA_S3_ENDPOINT_URL", "VIDQA_S3_ACCESS_KEY_ID", "VIDQA_S3_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VIDQA_HOME", str(tmp_path / "home"))
    from vidqa.config import reload_settings

    reload_settings()
    prefix = f"block-{uuid.uuid4().hex[:8]}"
    s3_endpoint.put(f"{prefix}/video_90.mov", VIDEOS / "video_90.mov")
    summary = score_videos(ScoreVideosParams(
        source=f"s3://{s3_endpoint.bucket}/{prefix}/", aws_credentials_block=block,
        technical={"sampling": {"n": 3}},
    ))
    assert (summary.n_videos, summary.n_scored, summary.n_failed) == (1, 1, 0)
    from vidqa.db import get_engine

    with get_engine(migrated_db).connect() as conn:
        (params,) = conn.execute(sa.text("SELECT parameters FROM runs")).scalars()
    assert params["aws_credentials_block"] == block
    assert s3_endpoint.secret not in json.dumps(params) and s3_endpoint.key_id not in json.dumps(params)


def test_transient_errors_are_retried_with_growing_backoff():
    from vidqa.retry import call_with_retries
    from vidqa.storage.s3 import is_transient

    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("connection reset by peer")
        return "bytes"

    assert call_with_retries(flaky, is_transient=is_transient, base_delay_s=1.0, sleep=sleeps.append) == "bytes"
    assert len(calls) == 3 and len(sleeps) == 2
    assert 0 <= sleeps[0] <= 1.0 and 0 <= sleeps[1] <= 2.0  # full jitter under a doubling cap

    denied = []

    def forbidden():
        denied.append(1)
        raise PermissionError("Access Denied")

    with pytest.raises(PermissionError):
        call_with_retries(forbidden, is_transient=is_transient, sleep=sleeps.append)
    assert len(denied) == 1  # not worth retrying

    with pytest.raises(TimeoutError):
        call_with_retries(lambda: (_ for _ in ()).throw(TimeoutError("slow")), is_transient=is_transient,
                          attempts=3, sleep=lambda s: None)
