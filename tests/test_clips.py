"""Clips: scene detection (PySceneDetect's content detector), 2-15 s pieces, fixed windows,
and per-clip scoring through the ledger."""

import numpy as np
import pytest
import sqlalchemy as sa

from conftest import VIDEOS, run_ffmpeg
from vidqa.video.clips import ClipSpec, detect_scenes, split_video
from vidqa.db import get_engine
from vidqa.scoring.job import ScorerSpec
from conftest import run_shard
from vidqa.video.probe import probe_video
from vidqa.storage import Storage


@pytest.fixture(scope="module")
def cut_video(tmp_path_factory):
    """3 s of testsrc2, a 1.8 s red scene (detected, too short to keep), 34 s of testsrc (too long: cut)."""
    path = tmp_path_factory.mktemp("clips") / "cuts.mp4"
    run_ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=s=192x144:r=10:d=3",
        "-f", "lavfi", "-i", "color=c=red:s=192x144:r=10:d=1.8",
        "-f", "lavfi", "-i", "testsrc=s=192x144:r=10:d=34",
        "-filter_complex", "[0][1][2]concat=n=3:v=1:a=0", "-c:v", "libx264", "-g", "30", str(path),
    )
    return str(path)


def pyscenedetect_scenes(path):
    import scenedetect

    return [(a.frame_num, b.frame_num) for a, b in scenedetect.detect(path, scenedetect.ContentDetector())]


@pytest.mark.parametrize("name", ["cut_video", "Bfyp0C02sko_000248_000258.mp4"])
def test_scene_boundaries_match_pyscenedetect(name, cut_video):
    path = cut_video if name == "cut_video" else str(VIDEOS / name)
    ours = detect_scenes(path, probe_video(path))
    assert ours == pyscenedetect_scenes(path)
    assert len(ours) >= 3


def test_scenes_become_2_to_15_second_clips(cut_video):
    probe = probe_video(cut_video)
    clips = split_video(cut_video, probe, ClipSpec(method="scenes"))
    assert [(c.start_frame, c.end_frame) for c in clips][:1] == [(0, 30)]
    # The 1.8 s red scene is dropped; the 34 s scene becomes three equal pieces.
    long = clips[1:]
    assert len(long) == 3 and long[0].start_frame == 48 and long[-1].end_frame == probe.frame_count
    assert all(a.end_frame == b.start_frame for a, b in zip(long, long[1:]))
    for c in clips:
        assert 2.0 <= c.duration_s <= 15.0
        assert c.start_s == pytest.approx(probe.frame_times[c.start_frame])
        assert c.kind == "scene"
    assert max(c.duration_s for c in long) - min(c.duration_s for c in long) <= 0.1 + 1e-9


def test_fixed_windows_follow_timestamps():
    path = str(VIDEOS / "counter.mp4")  # 30 frames at 10 fps
    probe = probe_video(path)
    spans = split_video(path, probe, ClipSpec(method="windows", window_s=1.0, min_s=0.5))
    assert [(c.start_frame, c.end_frame) for c in spans] == [(0, 10), (10, 20), (20, 30)]
    overlapping = split_video(path, probe, ClipSpec(method="windows", window_s=1.0, stride_s=0.5, min_s=0.5))
    assert [(c.start_frame, c.end_frame) for c in overlapping] == [(0, 10), (5, 15), (10, 20), (15, 25), (20, 30)]
    # A trailing window shorter than min_s is dropped.
    assert [(c.start_frame, c.end_frame) for c in
            split_video(path, probe, ClipSpec(method="windows", window_s=2.0, min_s=1.5))] == [(0, 20)]


def test_every_clip_is_scored_and_a_rerun_redoes_nothing(cut_video, migrated_db):
    engine = get_engine(migrated_db)
    storage = Storage()
    refs = storage.list_videos(cut_video) + storage.list_videos(str(VIDEOS / "video_90.mov"))
    spec = ClipSpec(method="scenes")
    scorers = [ScorerSpec("technical", {"sampling": {"method": "uniform", "n": 4}})]
    first = run_shard(engine, refs, scorers, None, spec, storage)
    assert [(o.status, o.clips) for o in first.outcomes] == [("scored", 4), ("scored", 0)]

    with engine.connect() as conn:
        clips = conn.execute(sa.text(
            "SELECT c.id, c.start_frame, c.end_frame FROM clips c JOIN videos v ON v.id = c.video_id "
            "WHERE c.kind = 'scene' AND c.split_hash = :h ORDER BY c.start_frame"), {"h": spec.split_hash}).all()
        splits = dict(conn.execute(sa.text(
            "SELECT v.uri, s.n_clips FROM video_splits s JOIN videos v ON v.id = s.video_id")).all())
        scored = conn.execute(sa.text(
            "SELECT clip_id, details FROM scores WHERE metric = 'luminance_mean'")).all()
    expected = [(c.start_frame, c.end_frame) for c in split_video(cut_video, probe_video(cut_video), spec)]
    assert [(c.start_frame, c.end_frame) for c in clips] == expected
    # A video too short for any clip is recorded as split, with no clips.
    assert splits == {refs[0].uri: 4, refs[1].uri: 0}
    by_clip = {clip_id: details for clip_id, details in scored}
    assert set(by_clip) == {c.id for c in clips}
    for c in clips:
        # Each clip's frames come from inside the clip.
        indices = by_clip[c.id]["frame_indices"]
        assert len(indices) == 4 and all(c.start_frame <= i < c.end_frame for i in indices)

    again = run_shard(engine, refs, scorers, None, spec, storage)
    assert [(o.status, o.from_ledger) for o in again.outcomes] == [("skipped", True), ("skipped", True)]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM clips WHERE kind = 'scene'")).scalar() == len(clips)
        assert conn.execute(sa.text("SELECT count(*) FROM scores")).scalar() == len(clips) * len(
            {r[0] for r in conn.execute(sa.text("SELECT DISTINCT metric FROM scores"))})


def test_clip_frames_are_the_video_frames(cut_video):
    """Sampling inside a clip decodes the same pixels as the whole-video decode."""
    from vidqa.video.decode import decode_frames
    from vidqa.video.sampling import SamplingSpec

    probe = probe_video(cut_video)
    clip = split_video(cut_video, probe, ClipSpec(method="scenes"))[2]
    frames = SamplingSpec(method="uniform", n=3).sample(cut_video, probe, clip.start_frame, clip.end_frame)
    whole = decode_frames(cut_video, probe, frames.indices)
    np.testing.assert_array_equal(frames.array, whole.array)
    assert frames.indices[0] == clip.start_frame


def test_the_splits_that_existed_keep_their_identity():
    """Adding shots reshaped ClipSpec.split_hash: every earlier split keeps the hash its clips
    and the shard cache keys were stored under (values from the code before shots)."""
    assert ClipSpec(method="scenes").split_hash == "2d15442e2320957e"
    assert ClipSpec(method="scenes", threshold=30, min_s=1.0).split_hash == "7c9a45e9f7885eed"
    assert ClipSpec(method="windows").split_hash == "9367589d4d582490"
    assert ClipSpec(method="windows", window_s=5, stride_s=2.5).split_hash == "16fd3896c35159d4"
    assert ClipSpec().split_hash == ""
