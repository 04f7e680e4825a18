"""Every sampler, on real files, checked against ffprobe's timestamps and a full ffmpeg decode."""

import numpy as np
import pytest

from conftest import VIDEOS, run_ffmpeg
from test_probe_and_frames import all_frames_rgb, ffprobe_json
from vidqa.video.decode import plan_decode
from vidqa.video.probe import probe_video
from vidqa.video.sampling import SamplingSpec

COUNTER = str(VIDEOS / "counter.mp4")  # 30 frames, 10 fps, 3 s
VFR = str(VIDEOS / "goldeneye-vfr-drop3.mp4")


@pytest.fixture(scope="module")
def counter():
    return probe_video(COUNTER)


@pytest.mark.parametrize(
    "spec, expected",
    [
        (dict(method="every_n_seconds", seconds=0.5), [0, 5, 10, 15, 20, 25]),
        (dict(method="every_n_frames", step=7), [0, 7, 14, 21, 28]),
        (dict(method="fractions", fractions=(0.1, 0.5, 0.9)), [3, 15, 27]),
        (dict(method="all", max_frames=10), list(range(10))),
        (dict(method="uniform", n=1), [15]),
    ],
)
def test_sampler_indices(counter, spec, expected):
    assert SamplingSpec(**spec).indices(counter).tolist() == expected


def test_clip_span_sampling(counter):
    # clip [10, 20) lasts 1 s: uniform(3) at 0, 0.5, 1.0 s -> frames 10, 15 and the clip's last
    assert SamplingSpec(method="uniform", n=3).indices(counter, 10, 20).tolist() == [10, 15, 19]
    assert SamplingSpec(method="every_n_frames", step=4).indices(counter, 10, 20).tolist() == [10, 14, 18]
    frames = SamplingSpec(method="fractions", fractions=(0.0, 0.5)).sample(COUNTER, counter, 10, 20)
    assert frames.indices.tolist() == [10, 15]
    np.testing.assert_allclose(frames.timestamps, [1.0, 1.5])


def test_mutually_exclusive_settings_are_checked():
    with pytest.raises(ValueError):
        SamplingSpec(method="every_n_seconds")
    with pytest.raises(ValueError):
        SamplingSpec(method="every_n_frames")


def test_every_n_seconds_on_variable_frame_rate_uses_stream_time():
    probe = probe_video(VFR)
    times = np.array(sorted(float(f["pts_time"]) for f in ffprobe_json(VFR, "-select_streams", "v:0",
                                                                        "-show_entries", "frame=pts_time")["frames"]))
    idx = SamplingSpec(method="every_n_seconds", seconds=1.0).indices(probe)
    assert len(idx) == 10
    for k, i in enumerate(idx):
        target = times[0] + k * 1.0
        assert times[i] <= target + 1e-9
        assert i + 1 == len(times) or times[i + 1] > target


def test_keyframes_are_the_codec_key_frames_and_decode_exactly():
    probe = probe_video(VFR)
    packets = ffprobe_json(VFR, "-select_streams", "v:0", "-show_entries", "packet=pts,flags")["packets"]
    key_pts = sorted(int(p["pts"]) for p in packets if "K" in p["flags"])
    spec = SamplingSpec(method="keyframes")
    idx = spec.indices(probe)
    assert probe.frame_pts[idx].tolist() == key_pts
    frames = spec.sample(VFR, probe)
    full = all_frames_rgb(VFR, probe.display_width, probe.display_height)
    for k, i in enumerate(frames.indices):
        np.testing.assert_array_equal(frames.array[k], full[i])


def test_keyframes_in_a_span_without_one_decode_the_spans_first_frame(counter):
    keys = set(counter.keyframe_indices.tolist())
    start = next(i for i in range(1, counter.frame_count) if i not in keys and i + 3 < counter.frame_count)
    end = start + 3
    assert not keys & set(range(start, end))
    frames = SamplingSpec(method="keyframes").sample(COUNTER, counter, start, end)
    assert frames.indices.tolist() == [start]
    full = all_frames_rgb(COUNTER, counter.display_width, counter.display_height)
    np.testing.assert_array_equal(frames.array[0], full[start])


def test_max_size_downscales_during_decode(counter):
    frames = SamplingSpec(method="uniform", n=2, max_size=320).sample(COUNTER, counter)
    assert frames.array.shape[1:] == (180, 320, 3)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=12", "-c:v", "libx264",
               "-g", "50", "-bf", "2", "-pix_fmt", "yuv420p", str(path))
    return str(path)


def test_sparse_sampling_seeks_and_still_returns_the_exact_frames(long_video):
    probe = probe_video(long_video)
    assert probe.frame_count == 300 and probe.keyframe_indices.tolist()[:3] == [0, 50, 100]
    spec = SamplingSpec(method="uniform", n=3)
    idx = spec.indices(probe)
    assert len(plan_decode(probe, idx.tolist())) == 3  # one seek per GOP, no full pass
    assert len(plan_decode(probe, list(range(0, 300, 2)))) == 1  # dense: one pass
    frames = spec.sample(long_video, probe)
    full = all_frames_rgb(long_video, 320, 240)
    assert frames.indices.tolist() == idx.tolist()
    for k, i in enumerate(frames.indices):
        np.testing.assert_array_equal(frames.array[k], full[i])


def test_many_sparse_frames_decode_exactly():
    # More wanted frames than one ffmpeg select expression can hold (it failed to parse).
    probe = probe_video(VFR)
    frames = SamplingSpec(method="every_n_frames", step=2).sample(VFR, probe)
    assert len(frames) == 80
    full = all_frames_rgb(VFR, probe.display_width, probe.display_height)
    np.testing.assert_array_equal(frames.array, full[::2])


def test_the_frame_cap_is_never_silent(counter):
    """counter.mp4 has 30 frames: `all` under a cap of 10 is an error that says how to raise
    it; every_n_frames capped at 3 records how many frames the cap left out."""
    from vidqa.cli.params import parse_sampling
    from vidqa.errors import VideoError

    with pytest.raises(VideoError, match=r"sampling all: the clip has 30 frames, over max_frames 10; raise the cap "
                                         r"\(--sampling all:30"):
        SamplingSpec(method="all", max_frames=10).sample(COUNTER, counter)
    whole = SamplingSpec(**parse_sampling("all:30")).sample(COUNTER, counter)
    assert (len(whole), whole.capped, whole.summary()["capped"]) == (30, 0, 0)
    capped = SamplingSpec(method="every_n_frames", step=2, max_frames=3).sample(COUNTER, counter)
    assert capped.indices.tolist() == [0, 2, 4] and capped.summary()["capped"] == 15 - 3
    assert parse_sampling("all") == {"method": "all"}


def test_a_capped_sampling_is_counted_in_the_run_summary(tmp_path, migrated_db, prefect_api_url):
    import re

    from conftest import vidqa_cli

    proc = vidqa_cli("run", COUNTER, "-c", str(_config(tmp_path)), "-s", "technical",
                     env={"VIDQA_DATABASE_URL": migrated_db, "PREFECT_API_URL": prefect_api_url})
    assert re.search(r"scores from capped frames\s*\S\s*1 \(max_frames cut", proc.stdout), proc.stdout


def _config(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("technical:\n  sampling:\n    method: every_n_frames\n    step: 2\n    max_frames: 3\n")
    return path
