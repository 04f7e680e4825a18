"""``vidqa run MANIFEST -s text_video --from-embeddings``: new prompts scored against the frame
embeddings an earlier run stored, decoding nothing, writing the rows a decoded run writes
(same scorer configuration, inputs and frames summary; values within 1e-6)."""

import json

import pytest
import sqlalchemy as sa

from conftest import VIDEOS, fresh_database, run_shard, vidqa_cli
from vidqa.db import get_engine, upgrade
from vidqa.scoring.job import ScorerSpec, ShardJob
from vidqa.scoring.shard import prepare_scorers, score_shard
from vidqa.storage import Storage
from vidqa.video.sampling import SamplingSpec

SAMPLES = ["videoscore_video1.mp4", "counter.mp4", "flipping_a_pancake.mkv"]
FIRST = ["a man talking", "digits counting up", "a pancake"]
NEW = ["a dog running on a beach", "numbers on a screen", "someone cooking breakfast"]


def manifest(tmp_path, name, prompts, videos=SAMPLES):
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps({"video_path": str(VIDEOS / v), "prompt": p}) + "\n"
                            for v, p in zip(videos, prompts)))
    return Storage().list_videos(str(path))


def text_video(model, **extra):
    return [ScorerSpec("text_video", {"clip": {"model": model, "pretrained": None},
                                      "sampling": {"method": "uniform", "n": 4}, **extra})]


def scores(engine):
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT v.uri, i.inputs->>'text' AS text, s.config_hash, s.input_hash, s.value, s.details "
            "FROM scores s JOIN clips c ON c.id = s.clip_id JOIN videos v ON v.id = c.video_id "
            "JOIN score_inputs i ON i.input_hash = s.input_hash WHERE s.metric = 'text_video_sim'")).mappings().all()
    return {(r["uri"], r["text"]): dict(r) for r in rows}


@pytest.fixture
def stored(tiny_clip_512, tmp_path, migrated_db, monkeypatch):
    """A decoded text_video run that stored frame embeddings."""
    from vidqa.config import reload_settings

    monkeypatch.setenv("VIDQA_STORE_FRAME_EMBEDDINGS", "1")
    reload_settings()
    refs = manifest(tmp_path, "first", FIRST)
    engine = get_engine(migrated_db)
    assert [o.status for o in run_shard(engine, refs, prepare_scorers(text_video(tiny_clip_512), refs)).outcomes] \
        == ["scored"] * 3
    monkeypatch.delenv("VIDQA_STORE_FRAME_EMBEDDINGS")
    reload_settings()
    return engine


def test_new_prompts_from_embeddings_equal_a_decoded_run(stored, tiny_clip_512, tmp_path, pg_admin_url,
                                                         encoded_frames, monkeypatch):
    refs = manifest(tmp_path, "new", NEW)
    specs = prepare_scorers(text_video(tiny_clip_512), refs)

    def no_decoding(*args, **kwargs):
        raise AssertionError("a video was decoded")

    with monkeypatch.context() as m:
        m.setattr(SamplingSpec, "sample", no_decoding)
        result = score_shard(stored, ShardJob(refs=refs, scorers=specs, from_embeddings=True))
    assert [(o.status, o.from_embeddings) for o in result.outcomes] == [("scored", True)] * 3
    assert encoded_frames == []  # no image went through CLIP
    from_embeddings = {k: v for k, v in scores(stored).items() if k[1] in NEW}
    assert len(from_embeddings) == 3

    # The same manifest decoded, into a database of its own.
    with fresh_database(pg_admin_url) as url:
        upgrade("head", url)
        decoded_engine = get_engine(url)
        run_shard(decoded_engine, refs, specs)
        decoded = scores(decoded_engine)
        decoded_engine.dispose()
    assert decoded.keys() == from_embeddings.keys()
    for key, row in decoded.items():
        got = from_embeddings[key]
        assert (got["config_hash"], got["input_hash"]) == (row["config_hash"], row["input_hash"])
        assert abs(got["value"] - row["value"]) < 1e-6
        sims = zip(got["details"].pop("frame_sims"), row["details"].pop("frame_sims"), strict=True)
        assert max(abs(a - b) for a, b in sims) < 1e-6
        for k in ("sim_avg", "sim_max", "sim_min"):
            assert abs(got["details"].pop(k) - row["details"].pop(k)) < 1e-6
        assert got["details"] == row["details"]  # frames summary, flip

    # A rerun finds them done.
    again = score_shard(stored, ShardJob(refs=refs, scorers=specs, from_embeddings=True))
    assert [o.status for o in again.outcomes] == ["skipped"] * 3


def test_what_cannot_be_scored_from_embeddings_is_said(stored, tiny_clip_512, tmp_path):
    refs = manifest(tmp_path, "new", NEW)
    other_sampling = prepare_scorers([ScorerSpec("text_video", {"clip": {"model": tiny_clip_512, "pretrained": None},
                                                                "sampling": {"method": "uniform", "n": 6}})], refs)
    result = score_shard(stored, ShardJob(refs=refs, scorers=other_sampling, from_embeddings=True))
    assert all(o.status == "failed" and "no frame embeddings stored for text_video" in o.reason
               for o in result.outcomes)
    never = manifest(tmp_path, "never", NEW[:1], ["fades.mp4"])
    result = score_shard(stored, ShardJob(refs=never, scorers=prepare_scorers(text_video(tiny_clip_512), never),
                                          from_embeddings=True))
    assert result.outcomes[0].status == "failed" and "nothing stored to score from" in result.outcomes[0].reason
    flipped = prepare_scorers(text_video(tiny_clip_512, flip="horizontal"), refs)
    with pytest.raises(ValueError, match="flip=horizontal needs the flipped frames"):
        score_shard(stored, ShardJob(refs=refs, scorers=flipped, from_embeddings=True))
    assert not [k for k in scores(stored) if k[1] in NEW]  # nothing was written for them


def test_the_cli_says_the_run_decoded_nothing(stored, tiny_clip_512, tmp_path, migrated_db, prefect_api_url):
    path = tmp_path / "cli.jsonl"
    path.write_text("".join(json.dumps({"video_path": str(VIDEOS / v), "prompt": p}) + "\n"
                            for v, p in zip(SAMPLES, NEW)))
    env = {"VIDQA_DATABASE_URL": migrated_db, "PREFECT_API_URL": prefect_api_url}
    out = vidqa_cli("run", str(path), "-s", "text_video", "--clip-model", tiny_clip_512, "-n", "4",
                    "--from-embeddings", env=env).stdout
    assert "from stored embeddings" in out and "3 videos scored from their stored frame" in out
    assert len([k for k in scores(stored) if k[1] in NEW]) == 3
    bad = vidqa_cli("run", str(path), "-s", "technical", "--from-embeddings", env=env, check=False)
    assert bad.returncode == 2 and "from_embeddings scores text_video only" in bad.stderr
