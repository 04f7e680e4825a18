"""Probing and uniform frame sampling checked against the ffprobe/ffmpeg binaries directly."""

import json
import subprocess

import numpy as np
import pytest

from conftest import SAMPLE_VIDEOS, VIDEOS
from vidqa.errors import VideoError
from vidqa.video.decode import decode_frames
from vidqa.video.probe import probe_video
from vidqa.video.sampling import sample_frames_uniform, uniform_indices


def ffprobe_json(path, *args):
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", *args, str(path)], capture_output=True, check=True)
    return json.loads(out.stdout)


def all_frames_rgb(path, width, height):
    """Every decodable frame through a plain ffmpeg command (independent of vidqa)."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "quiet", "-i", str(path), "-map", "0:v:0", "-vf", f"scale={width}:{height},setsar=1",
         "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"],
        capture_output=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


@pytest.mark.parametrize("path", SAMPLE_VIDEOS, ids=lambda p: p.name)
def test_probe_counts_match_ffprobe(path):
    probe = probe_video(str(path))
    counted = ffprobe_json(path, "-select_streams", "v:0", "-count_packets", "-show_entries", "stream=nb_read_packets")
    assert probe.frame_count == int(counted["streams"][0]["nb_read_packets"])
    assert probe.duration_s > 0


def test_vfr_timestamps_are_the_stream_timestamps():
    path = VIDEOS / "goldeneye-vfr-drop3.mp4"
    probe = probe_video(str(path))
    frames = ffprobe_json(path, "-select_streams", "v:0", "-show_entries", "frame=pts_time")["frames"]
    expected = np.array(sorted(float(f["pts_time"]) for f in frames))
    np.testing.assert_allclose(probe.frame_times, expected, atol=1e-6)
    # Variable frame rate: the gaps are not constant, so index/fps would be wrong.
    assert np.ptp(np.diff(expected)) > 0.01


def test_rotation_gives_displayed_size():
    for name, stored, displayed in [
        ("issue-134-rotate.mp4", (1280, 544), (544, 1280)),
        ("video_90.mov", (568, 320), (320, 568)),
    ]:
        probe = probe_video(str(VIDEOS / name))
        assert (probe.width, probe.height) == stored
        assert (probe.display_width, probe.display_height) == displayed
        frames = sample_frames_uniform(str(VIDEOS / name), probe, 2)
        assert frames.array.shape[1:3] == (displayed[1], displayed[0])


def test_mkv_without_stream_duration_uses_container():
    probe = probe_video(str(VIDEOS / "flipping_a_pancake.mkv"))
    assert probe.stream_duration_s is None
    assert probe.duration_s == pytest.approx(10.381)


def test_more_frames_than_exist_returns_what_exists():
    path = str(VIDEOS / "video_90.mov")
    frames = sample_frames_uniform(path, probe_video(path), 8)
    assert len(frames) == 3
    assert frames.indices.tolist() == [0, 1, 2]


def test_uniform_times_follow_data_juicer():
    probe = probe_video(str(VIDEOS / "counter.mp4"))  # 30 frames at 10 fps, 3 s
    assert uniform_indices(probe, 1).tolist() == [15]  # t = 1.5 s
    assert uniform_indices(probe, 4).tolist() == [0, 10, 20, 29]  # t = 0, 1, 2, 3 s


@pytest.mark.parametrize("name", ["counter.mp4", "goldeneye-vfr-drop3.mp4", "issue-134-rotate.mp4", "fades.mp4"])
def test_sampled_frames_equal_full_decode(name):
    path = VIDEOS / name
    probe = probe_video(str(path))
    frames = sample_frames_uniform(str(path), probe, 7)
    full = all_frames_rgb(path, probe.display_width, probe.display_height)
    assert full.shape[0] == probe.frame_count
    for k, idx in enumerate(frames.indices):
        np.testing.assert_array_equal(frames.array[k], full[idx])


def test_corrupt_frame_is_skipped_and_reported():
    path = str(VIDEOS / "corrupted.mp4")
    probe = probe_video(path)
    frames = decode_frames(path, probe, range(probe.frame_count))
    assert probe.frame_count == 50
    assert len(frames) == 49
    assert frames.missing_indices == [30]
    assert any("Invalid" in e or "error" in e.lower() for e in frames.decode_errors)


def test_bad_inputs_raise_readable_errors(bad_inputs):
    reasons = {}
    for kind, path in bad_inputs.items():
        with pytest.raises(VideoError) as info:
            probe_video(str(path))
        reasons[kind] = info.value.reason
    assert reasons["empty"] == "empty file (0 bytes)"
    assert reasons["text"].startswith("not a readable video")
    assert reasons["audio"] == "no video stream (streams: audio:aac)"
