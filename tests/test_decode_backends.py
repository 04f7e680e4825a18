"""The two decoders behind ``decode_frames``: torchcodec in the process and the ffmpeg binary.

Both must give the same frames: the in-process frames are compared byte for byte with the
binary's on every shared sample video (VFR, rotation, a stream without duration, mpeg4 part 2),
and the cases torchcodec does not handle the binary's way (non-square pixels, a corrupt
frame, shrinking) must come out exactly as the binary gives them."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from conftest import SAMPLE_VIDEOS, VIDEOS
from vidqa.config import get_settings
from vidqa.video.decode import decode_frames
from vidqa.video.in_process import Unsupported, available, decode_in_process
from vidqa.video.probe import probe_video
from vidqa.video.sampling import uniform_indices



@pytest.fixture
def decoder(monkeypatch):
    def use(name: str) -> None:
        monkeypatch.setenv("VIDQA_DECODER", name)
        get_settings.cache_clear()

    yield use
    get_settings.cache_clear()


def both(decoder, path, probe, indices, **kwargs):
    decoder("ffmpeg")
    binary = decode_frames(path, probe, indices, **kwargs)
    decoder("auto")
    return binary, decode_frames(path, probe, indices, **kwargs)


def assert_same(a, b):
    assert a.array.shape == b.array.shape and a.array.dtype == b.array.dtype == np.uint8
    assert np.array_equal(a.array, b.array)
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.timestamps, b.timestamps)
    assert a.missing_indices == b.missing_indices and a.requested == b.requested


@pytest.mark.parametrize("path", [p for p in SAMPLE_VIDEOS if p.name != "corrupted.mp4"], ids=lambda p: p.name)
def test_in_process_frames_are_the_binarys(path, decoder):
    probe = probe_video(str(path))
    indices = sorted(set(uniform_indices(probe, 16).tolist()) | set(probe.keyframe_indices.tolist()[:4]))
    assert available() is None  # torchcodec is a dependency: it must load here
    frames = decode_in_process(str(path), probe, indices)  # the in-process path itself, no fallback
    assert frames.shape == (len(indices), probe.display_height, probe.display_width, 3)
    binary, auto = both(decoder, str(path), probe, indices)
    assert_same(binary, auto)
    assert np.array_equal(frames, auto.array)


def test_non_square_pixels_fall_back_to_the_binary(tmp_path, decoder):
    path = str(tmp_path / "sar.mp4")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10:duration=2",
                    "-vf", "setsar=2", "-c:v", "libx264", "-pix_fmt", "yuv420p", path], check=True)  # fmt: skip
    probe = probe_video(path)
    assert (probe.display_width, probe.display_height) == (640, 240)
    with pytest.raises(Unsupported, match="non-square pixels"):
        decode_in_process(path, probe, [0, 5])
    binary, auto = both(decoder, path, probe, [0, 5, 19])
    assert_same(binary, auto)
    assert auto.array.shape == (3, 240, 640, 3)


def test_a_corrupt_frame_is_reported_as_the_binary_reports_it(decoder):
    path = str(VIDEOS / "corrupted.mp4")
    probe = probe_video(path)
    with pytest.raises(Unsupported, match="decode error"):
        decode_in_process(path, probe, list(range(probe.frame_count)))
    binary, auto = both(decoder, path, probe, list(range(probe.frame_count)))
    assert_same(binary, auto)
    assert auto.missing_indices == [30] and len(auto) == 49


def test_shrinking_and_fixed_sizes_stay_with_the_binary(decoder):
    path = str(VIDEOS / "Bfyp0C02sko_000248_000258.mp4")
    probe = probe_video(path)
    for kwargs in ({"max_size": 160}, {"size": (112, 112)}):
        binary, auto = both(decoder, path, probe, [0, 100, 249], **kwargs)
        assert_same(binary, auto)


def test_the_setting_chooses_the_decoder(decoder, monkeypatch):
    """With no usable ffmpeg binary, only the in-process decoder can decode."""
    path = str(VIDEOS / "fades.mp4")
    probe = probe_video(path)
    monkeypatch.setenv("VIDQA_FFMPEG_BINARY", "/nonexistent/ffmpeg")
    decoder("auto")
    assert len(decode_frames(path, probe, [0, 10, 200])) == 3
    decoder("torchcodec")
    assert len(decode_frames(path, probe, [0, 10, 200])) == 3
    decoder("ffmpeg")
    with pytest.raises(RuntimeError, match="ffmpeg binary '/nonexistent/ffmpeg' not found"):
        decode_frames(path, probe, [0, 10, 200])


@pytest.mark.parametrize("path", SAMPLE_VIDEOS, ids=lambda p: p.name)
def test_the_probes_frame_table_is_torchcodecs_own_scan(path):
    """The in-process decoder seeks with the probe's frame table instead of scanning the file
    again; it must be the table torchcodec's own exact scan builds (frames and key frames)."""
    from torchcodec._core import _get_key_frame_indices
    from torchcodec.decoders import VideoDecoder

    probe = probe_video(str(path))
    scanned = VideoDecoder(str(path), seek_mode="exact", stream_index=probe.stream_index)
    assert scanned.metadata.num_frames == probe.frame_count
    assert np.array_equal(_get_key_frame_indices(scanned._decoder).numpy(), probe.keyframe_indices)
    assert probe.frame_durations.shape == probe.frame_pts.shape


def test_the_video_stream_is_the_probes_when_audio_comes_first(tmp_path, decoder):
    """Packets, frames and the in-process decoder all follow the probe's video stream, which
    here is the container's second stream."""
    path = str(tmp_path / "audio-first.mp4")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=15:duration=2",
                    "-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-map", "1:a", "-map", "0:v",
                    "-c:v", "libx264", "-g", "10", "-pix_fmt", "yuv420p", "-c:a", "aac", path], check=True)  # fmt: skip
    probe = probe_video(path)
    assert probe.stream_index == 1 and probe.has_audio
    counted = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
                              "stream=nb_read_packets", "-of", "csv=p=0", path],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert probe.frame_count == int(counted) == 30
    assert probe.keyframe_indices.tolist() == [0, 10, 20]
    assert np.allclose(probe.frame_durations * float(probe.time_base), 1 / 15)
    binary, auto = both(decoder, path, probe, [0, 7, 29])
    assert_same(binary, auto)
    assert np.array_equal(decode_in_process(path, probe, [0, 7, 29]), auto.array)
