"""The ledger's reads and the whole-video clip: one pass over the ledger per video (not a
query per clip, not twice), and one time convention for the whole-video clip whichever split
ran last (real Postgres, real ffmpeg)."""

import pytest
import sqlalchemy as sa

from conftest import run_ffmpeg, run_shard
from vidqa.db import get_engine
from vidqa.scoring.job import ScorerSpec
from vidqa.storage.local import local_ref
from vidqa.video.clips import ClipSpec
from vidqa.video.probe import probe_video

WINDOWS = ClipSpec(method="windows", window_s=1.0, min_s=0.5)


@pytest.fixture(scope="module")
def late_start(tmp_path_factory):
    """A 4 s MPEG-TS video whose first frame is presented at 1.6 s, not 0."""
    path = tmp_path_factory.mktemp("ledger") / "late.ts"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=4", "-c:v", "libx264",
               "-pix_fmt", "yuv420p", "-f", "mpegts", str(path))
    return path


def whole_video_rows(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT start_frame, end_frame, start_time_s, end_time_s FROM clips WHERE kind = 'video'")).all()


@pytest.mark.parametrize("order", [(WINDOWS, ClipSpec()), (ClipSpec(), WINDOWS)])
def test_the_whole_video_clip_has_one_time_convention_whichever_split_ran_last(migrated_db, late_start, order):
    engine = get_engine(migrated_db)
    probe = probe_video(str(late_start))
    assert float(probe.frame_times[0]) > 1.0  # the convention matters: 0.0 is not the first frame's time
    expected = (0, probe.frame_count, pytest.approx(float(probe.frame_times[0])),
                pytest.approx(probe.end_time_s(probe.frame_count)))
    spec = [ScorerSpec("technical", {"sampling": {"n": 2}})]
    for clips in order:
        run_shard(engine, [local_ref(str(late_start))], spec, clip_spec=clips)
        assert [tuple(r) for r in whole_video_rows(engine)] == [expected]


def test_a_partly_finished_video_reads_the_ledger_once(migrated_db, late_start, tiny_clip):
    engine = get_engine(migrated_db)
    ref = local_ref(str(late_start))
    technical = ScorerSpec("technical", {"sampling": {"n": 2}})
    run_shard(engine, [ref], [technical], clip_spec=WINDOWS)
    with engine.connect() as conn:
        n_clips = conn.execute(sa.text("SELECT count(*) FROM clips WHERE split_hash <> ''")).scalar_one()
    assert n_clips >= 3

    reads: list[str] = []

    def record(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT"):
            reads.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        text_video = ScorerSpec("text_video", {"clip": {"model": tiny_clip[32], "pretrained": None},
                                               "sampling": {"n": 2}})
        (outcome,) = run_shard(engine, [local_ref(str(late_start), prompt="a test pattern")],
                               [technical, text_video], clip_spec=WINDOWS).outcomes
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert outcome.status == "scored" and outcome.scorers_run == ["text_video"]  # technical: from the ledger
    score_reads = [s for s in reads if "FROM scores" in s]
    failure_reads = [s for s in reads if "FROM scorer_failures" in s]
    split_reads = [s for s in reads if "FROM video_splits" in s]
    # One query per table for all the video's clips, in each of the two looks: before the
    # claim, and under it (a run that held the claim may just have finished the work).
    assert (len(score_reads), len(failure_reads), len(split_reads)) == (2, 2, 2), reads
    with engine.connect() as conn:
        per_scorer = dict(conn.execute(sa.text(
            "SELECT scorer, count(DISTINCT clip_id) FROM scores JOIN clips c ON c.id = clip_id "
            "WHERE c.split_hash <> '' GROUP BY scorer")).all())
    assert per_scorer == {"technical": n_clips, "text_video": n_clips}
