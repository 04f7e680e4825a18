"""Faults that used to hang, loop or drown a run, each with real objects: a FIFO and a link to
/dev/zero named like videos, folders that link to themselves, an unreadable folder; a probe
that never ends; two processes migrating one fresh database at once; and sources the CLI
must refuse in one line."""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import REPO, run_shard, vidqa_cli
from synthetic import distinct_video
from vidqa.db import get_engine
from vidqa.errors import VideoError
from vidqa.scoring.job import ScorerSpec
from vidqa.storage import Storage
from vidqa.storage.local import list_local

TECHNICAL = [ScorerSpec("technical", {"sampling": {"n": 2}})]


def test_a_fifo_and_a_link_to_dev_zero_fail_with_a_reason_and_the_run_goes_on(tmp_path, migrated_db):
    folder = tmp_path / "videos"
    good = distinct_video(folder / "good.mp4", 3)
    os.mkfifo(folder / "clip.mp4")
    (folder / "zero.mp4").symlink_to("/dev/zero")
    refs = Storage().list_videos(str(folder))
    started = time.monotonic()
    result = run_shard(get_engine(migrated_db), refs, TECHNICAL)
    assert time.monotonic() - started < 60
    outcomes = {o.uri: (o.status, o.reason) for o in result.outcomes}
    assert outcomes == {
        str(good): ("scored", None),
        str(folder / "clip.mp4"): ("failed", "not a regular file: a FIFO (named pipe)"),
        "/dev/zero": ("failed", "not a regular file: a character device"),
    }


def test_folders_that_link_to_themselves_are_walked_once(tmp_path):
    folder = tmp_path / "videos"
    files = [distinct_video(folder / "a.mp4", 1), distinct_video(folder / "sub" / "b.mp4", 2)]
    (folder / "self").symlink_to(".")
    (folder / "sub" / "up").symlink_to("..")
    (folder / "sub" / "again").symlink_to(folder / "sub")
    started = time.monotonic()
    refs = list_local(str(folder))
    assert time.monotonic() - started < 10
    assert [r.uri for r in refs] == sorted(str(p) for p in files)


LIST_AS_NOBODY = """
import json, os, sys
os.setgid(65534); os.setuid(65534)
from vidqa.storage.local import list_local
print(json.dumps([[r.uri, r.fields] for r in list_local(sys.argv[1])]))
"""


def test_an_unreadable_folder_is_a_failed_entry_not_a_silent_gap(migrated_db):
    # Under /tmp with open modes, so an unprivileged user can walk what it may read.
    root = Path(tempfile.mkdtemp(prefix="vidqa-unreadable-"))
    try:
        os.chmod(root, 0o755)
        good = distinct_video(root / "good.mp4", 4)
        closed = root / "closed"
        distinct_video(closed / "hidden.mp4", 5)
        for p in (good, root / "closed" / "hidden.mp4"):
            os.chmod(p, 0o644)
        os.chmod(closed, 0o000)
        if os.geteuid() == 0:  # root reads every folder: list as nobody, as a user would
            proc = subprocess.run([sys.executable, "-c", LIST_AS_NOBODY, str(root)], capture_output=True, text=True,
                                  cwd="/", env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
            assert proc.returncode == 0, proc.stderr
            listed = json.loads(proc.stdout)
        else:
            listed = [[r.uri, r.fields] for r in list_local(str(root))]
        assert listed == [[str(closed), {"vidqa_unlistable": "cannot list folder: Permission denied"}],
                          [str(good), {}]]
        # The failed entry becomes a recorded failure (retried by the next run), the rest is scored.
        from vidqa.storage.refs import VideoRef
        from vidqa.storage.local import local_ref

        refs = [VideoRef(uri=listed[0][0], fields=listed[0][1]), local_ref(str(good))]
        outcomes = {o.uri: (o.status, o.reason, o.transient)
                    for o in run_shard(get_engine(migrated_db), refs, TECHNICAL).outcomes}
        assert outcomes == {str(closed): ("failed", "cannot list folder: Permission denied", True),
                            str(good): ("scored", None, False)}
    finally:
        os.chmod(root / "closed", 0o755)
        subprocess.run(["rm", "-rf", str(root)], check=True)


def test_a_probe_that_never_ends_is_killed_at_its_time_limit(tmp_path, monkeypatch):
    """An ffprobe that never returns (a stalled network mount looks like this) stands in as a
    real process through the ``ffprobe_binary`` setting."""
    from vidqa.config import reload_settings
    from vidqa.video.probe import probe_video

    stalled = tmp_path / "ffprobe-stalled"
    stalled.write_text("#!/bin/sh\nexec sleep 987\n")
    stalled.chmod(0o755)
    video = distinct_video(tmp_path / "v.mp4", 6)
    monkeypatch.setenv("VIDQA_FFPROBE_BINARY", str(stalled))
    monkeypatch.setenv("VIDQA_PROBER", "ffprobe")  # the in-process prober's deadline: test_probe_libav.py
    monkeypatch.setenv("VIDQA_PROBE_TIMEOUT_S", "1.5")
    reload_settings()
    try:
        started = time.monotonic()
        try:
            probe_video(str(video))
            raise AssertionError("a stalled probe returned")
        except VideoError as exc:
            assert (exc.stage, exc.reason) == ("probe", "probing took longer than 1.5 s")
        assert time.monotonic() - started < 10
        left = subprocess.run(["pgrep", "-f", "sleep 987"], capture_output=True, text=True).stdout
        assert left == ""  # killed, not left behind
    finally:
        monkeypatch.delenv("VIDQA_FFPROBE_BINARY")
        monkeypatch.delenv("VIDQA_PROBER")
        monkeypatch.delenv("VIDQA_PROBE_TIMEOUT_S")
        reload_settings()


MIGRATE = """
import sys
from vidqa.db import upgrade
upgrade("head", sys.argv[1])
print("migrated")
"""


def test_two_processes_migrating_one_fresh_database_queue(database_url):
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE, database_url], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-3000:] for _, err in results]
    assert [out.strip() for out, _ in results] == ["migrated", "migrated"]
    from vidqa.db.migrate import head_revision

    with get_engine(database_url).connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [head_revision()]


def test_a_bad_source_is_one_line_on_stderr_and_exit_2(tmp_path, migrated_db, prefect_api_url):
    env = {"VIDQA_DATABASE_URL": migrated_db, "PREFECT_API_URL": prefect_api_url,
           "PREFECT_LOGGING_LEVEL": ""}  # as a user runs it: vidqa's own quiet default
    for source, says in [(str(tmp_path / "nope"), "source not found"),
                         ("http://example.com/clip.mp4", "unsupported source 'http://example.com/clip.mp4'")]:
        proc = vidqa_cli("run", source, env=env, check=False)
        assert proc.returncode == 2, proc.stderr
        assert says in proc.stderr and "Traceback" not in proc.stderr + proc.stdout, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_video_is_ok_only_once_its_scores_are_written(tmp_path, migrated_db):
    """A shard killed between writing scores and marking its videos leaves them 'scoring':
    out of the views, and made ok by the next run without scoring anything again."""
    from vidqa.scoring.queue import SCORER_CALLS

    good = distinct_video(tmp_path / "v.mp4", 8)
    engine = get_engine(migrated_db)
    run_shard(engine, Storage().list_videos(str(good)), TECHNICAL)
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT status FROM videos")).scalar_one() == "ok"
        conn.execute(sa.text("UPDATE videos SET status = 'scoring'"))  # what the killed shard left
    from vidqa.db.views import refresh_if_stale

    refresh_if_stale(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM video_scores_wide")).scalar_one() == 0
    before = SCORER_CALLS.copy()
    (outcome,) = run_shard(engine, Storage().list_videos(str(good)), TECHNICAL).outcomes
    assert (outcome.status, SCORER_CALLS == before) == ("skipped", True)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT status FROM videos")).scalar_one() == "ok"
        assert conn.execute(sa.text("SELECT count(*) FROM video_scores_wide")).scalar_one() == 1


def test_the_pixel_limit_applies_to_the_displayed_size(tmp_path, monkeypatch):
    """A 160x120 file with a 100:1 pixel aspect ratio is 16000x120 when decoded."""
    from conftest import run_ffmpeg
    from vidqa.config import reload_settings
    from vidqa.video.probe import probe_video

    wide = tmp_path / "wide.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=1", "-vf", "setsar=100/1",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", str(wide))
    plain = distinct_video(tmp_path / "plain.mp4", 9, size="640x480", seconds=1.0)
    monkeypatch.setenv("VIDQA_MAX_PIXELS", str(1_000_000))
    reload_settings()
    try:
        assert probe_video(str(plain)).display_width == 640  # 307200 pixels: under the limit
        try:
            probe_video(str(wide))
            raise AssertionError("a 16000x120 picture passed a 1e6-pixel limit")
        except VideoError as exc:
            assert exc.stage == "probe"
            assert exc.reason == ("absurd displayed frame size 16000x120 (stored 160x120, sample aspect ratio "
                                  "100:1; limit 1000000 pixels)")
        monkeypatch.setenv("VIDQA_MAX_FRAMES", "5")
        reload_settings()
        try:
            probe_video(str(plain))
            raise AssertionError("25 frames passed a 5-frame limit")
        except VideoError as exc:
            assert exc.reason.startswith("absurd length: 25 frames over")
    finally:
        monkeypatch.delenv("VIDQA_MAX_PIXELS")
        monkeypatch.delenv("VIDQA_MAX_FRAMES", raising=False)
        reload_settings()


DECODE_AND_MEASURE = """
import json, sys
from vidqa.errors import VideoError
from vidqa.video.probe import probe_video
from vidqa.video.sampling import SamplingSpec
from vidqa.video.in_process import available
probe = probe_video(sys.argv[1])
available()  # torchcodec's libraries (and torch) load once per process: not the decode's memory
spec = SamplingSpec(method="all", max_frames=10_000)
def peak_rss():  # this process's own peak (ru_maxrss would carry a forking parent's over exec)
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024
before = peak_rss()
try:
    frames = spec.sample(sys.argv[1], probe)
    result = {"frames": len(frames.indices), "nbytes": frames.array.nbytes}
except VideoError as exc:
    result = {"refused": exc.reason}
result["grew"] = peak_rss() - before
print(json.dumps(result))
"""


@pytest.mark.parametrize("decoder", ["ffmpeg", "torchcodec"])
def test_one_decode_stays_within_its_memory_bound(tmp_path, decoder):
    """200 frames of 640x480 are 184 MB raw: under a 600 MiB bound they decode and the process
    grows by less than the bound; under a 512 MiB bound (the ffmpeg binary's 3 x 184 MB peak
    would pass it) they are refused before decoding starts, with the reason, and the process
    hardly grows. The in-process decoder grows by about the frames' bytes alone."""
    video = distinct_video(tmp_path / "v.mp4", 4, seconds=8.0, size="640x480")
    raw = 200 * 640 * 480 * 3

    def measure(limit_mb):
        env = {**os.environ, "VIDQA_MAX_DECODE_MB": str(limit_mb), "VIDQA_DECODER": decoder}
        proc = subprocess.run([sys.executable, "-c", DECODE_AND_MEASURE, str(video)], capture_output=True, text=True,
                              env=env, cwd=REPO, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    fits = measure(600)
    assert fits["frames"] == 200 and fits["nbytes"] == raw
    assert raw <= fits["grew"] < 600 * 2**20, fits["grew"]  # it decoded, within the bound
    if decoder == "torchcodec":
        assert fits["grew"] < 1.25 * raw, fits["grew"]
    refused = measure(512)
    assert refused["refused"] == ("decoding 200 frames of 640x480 needs 527 MiB, over the 512 MiB limit "
                                  "(VIDQA_MAX_DECODE_MB): sample fewer frames or shrink them (--max-size)")
    assert refused["grew"] < 32 * 2**20, refused["grew"]


def test_a_file_the_system_refuses_to_read_says_so_not_that_the_video_is_bad(tmp_path):
    from vidqa.video.probe import probe_failure, probe_video

    busy = probe_failure("Device or resource busy")
    assert (busy.stage, busy.transient) == ("read", True)
    assert busy.reason.startswith("cannot read the file: Device or resource busy (the operating system refused")
    bad = probe_failure("Invalid data found when processing input")
    assert (bad.stage, bad.transient, bad.reason) == ("probe", False,
                                                      "not a readable video: Invalid data found when processing input")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    try:
        probe_video(str(text))
        raise AssertionError("a text file probed as a video")
    except VideoError as exc:
        assert exc.reason == "not a readable video: Invalid data found when processing input"
    # A regular file that the kernel lets nobody read (sysfs, write-only): ffprobe gets EACCES.
    write_only = Path("/sys/bus/pci/rescan")
    if write_only.is_file():
        try:
            probe_video(str(write_only))
            raise AssertionError("a write-only file probed as a video")
        except VideoError as exc:
            assert exc.reason.startswith("cannot read the file: Permission denied (") and exc.transient
