"""The in-process prober (PyAV and torchcodec over the FFmpeg libraries) gives the ffprobe
binary's probe: the same columns, frames, key frames and stream, and the same failure reasons.

The ffprobe path itself is checked against the binary's own counts and timestamps in
test_probe_and_frames.py and test_samplers.py; this file holds the two probers to each other,
on every shared sample and on the containers and streams the samples lack."""

import os

import numpy as np
import pytest

from conftest import SAMPLE_VIDEOS, VIDEOS, run_ffmpeg
from vidqa.config import reload_settings
from vidqa.errors import VideoError
from vidqa.video.probe import probe_video
from vidqa.video.probe_libav import available

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

LAVFI = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=3"]


@pytest.fixture(scope="module")
def edge_cases(tmp_path_factory):
    """Containers and streams the shared samples lack, made with the real ffmpeg."""
    d = tmp_path_factory.mktemp("probe-edge-cases")
    made = {
        "sar_2to1.mp4": [*LAVFI, "-vf", "setsar=2/1", "-c:v", "libx264"],
        "audio_first.mp4": ["-f", "lavfi", "-i", "sine=duration=3", *LAVFI, "-map", "0:a", "-map", "1:v",
                            "-c:v", "libx264", "-c:a", "aac"],
        "vp9.webm": [*LAVFI, "-c:v", "libvpx-vp9", "-b:v", "200k"],
        "mpeg2.ts": [*LAVFI, "-c:v", "mpeg2video", "-f", "mpegts"],
        "vfr.mkv": [*LAVFI, "-c:v", "libx264", "-vf", "setpts='PTS+if(gt(N,20),0.5/TB,0)'", "-fps_mode", "vfr"],
        "bframes_long_gop.mp4": [*LAVFI, "-c:v", "libx264", "-g", "60", "-bf", "3"],
    }
    for name, args in made.items():
        run_ffmpeg(*args, str(d / name))
    return sorted(d.iterdir())


def probe_with(prober: str, path) -> object:
    os.environ["VIDQA_PROBER"] = prober
    reload_settings()
    try:
        return probe_video(str(path))
    except VideoError as exc:
        return exc
    finally:
        del os.environ["VIDQA_PROBER"]
        reload_settings()


def assert_same_probe(path) -> None:
    binary, libav = probe_with("ffprobe", path), probe_with("libav", path)
    assert not isinstance(binary, VideoError), binary.reason
    assert not isinstance(libav, VideoError), libav.reason
    expected, got = binary.columns(), libav.columns()
    assert {k: got[k] for k in expected if k != "probe"} == {k: v for k, v in expected.items() if k != "probe"}
    np.testing.assert_array_equal(libav.frame_pts, binary.frame_pts)
    np.testing.assert_array_equal(libav.keyframe_indices, binary.keyframe_indices)
    assert (libav.stream_index, libav.time_base) == (binary.stream_index, binary.time_base)
    assert libav.raw["prober"].startswith("libav") and binary.raw["prober"] == "ffprobe"
    # Frame durations only feed torchcodec's frame table (it seeks by index, not by time).
    # Where they differ, PyAV's newer FFmpeg read an MP4's sample table (each packet's decode
    # time delta; they sum to the stream's duration) while the system's 5.1 repeated the
    # nominal frame duration.
    if not np.array_equal(libav.frame_durations, binary.frame_durations):
        video = next(s for s in libav.raw["streams"] if s["index"] == libav.stream_index)
        assert int(libav.frame_durations.sum()) == int(video["duration_ts"])
        assert np.unique(binary.frame_durations).size == 1


@pytest.mark.parametrize("path", SAMPLE_VIDEOS, ids=lambda p: p.name)
def test_libav_probes_every_sample_as_ffprobe_does(path):
    assert_same_probe(path)


def test_libav_probes_other_containers_and_streams_as_ffprobe_does(edge_cases):
    for path in edge_cases:
        assert_same_probe(path)
    audio_first = probe_with("libav", next(p for p in edge_cases if p.name == "audio_first.mp4"))
    assert (audio_first.stream_index, audio_first.has_audio, audio_first.audio_codec) == (1, True, "aac")
    sar = probe_with("libav", next(p for p in edge_cases if p.name == "sar_2to1.mp4"))
    assert (sar.sample_aspect_ratio, sar.display_width, sar.display_height) == ("2:1", 640, 240)


def test_rotation_comes_from_the_display_matrix():
    for name, rotation in [("issue-134-rotate.mp4", 270), ("video_90.mov", 270), ("counter.mp4", 0)]:
        probe = probe_with("libav", VIDEOS / name)
        assert probe.rotation == rotation, name


def test_a_file_libav_cannot_read_fails_with_ffprobes_reason(tmp_path, bad_inputs):
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes((VIDEOS / "Bfyp0C02sko_000248_000258.mp4").read_bytes()[:30000])
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    for path in [truncated, garbage, *bad_inputs.values()]:
        binary, libav = probe_with("ffprobe", path), probe_with("libav", path)
        assert isinstance(binary, VideoError) and isinstance(libav, VideoError), path.name
        assert (libav.stage, libav.reason, libav.transient) == (binary.stage, binary.reason, binary.transient)
    assert probe_with("libav", bad_inputs["audio"]).reason == "no video stream (streams: audio:aac)"


def test_an_in_process_probe_past_its_deadline_is_a_failure_not_a_hang(monkeypatch):
    """Demuxing a 1080p clip takes milliseconds; a deadline far below that must end the probe
    with the same reason the ffprobe path gives (test_faults.py), the read left to its thread."""
    monkeypatch.setenv("VIDQA_PROBE_TIMEOUT_S", "0.0002")
    try:
        failed = probe_with("libav", VIDEOS / "counter.mp4")
    finally:
        monkeypatch.delenv("VIDQA_PROBE_TIMEOUT_S")
        reload_settings()
    assert isinstance(failed, VideoError)
    assert (failed.stage, failed.reason) == ("probe", "probing took longer than 0.0002 s")
