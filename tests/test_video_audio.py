"""VideoAudioSimilarity: the audio's text (provided, or made by a tiny random transformers
speech recogniser / audio classifier built offline) against frames in CLIP space, through
the real pipeline and ledger; numbers checked against independent float64 numpy."""

import json

import numpy as np
import pytest
import sqlalchemy as sa

from audio_fixtures import LABELS
from conftest import VIDEOS, run_ffmpeg
from vidqa.video.audio import decode_audio
from vidqa.db import get_engine
from vidqa.errors import ScorerError, VideoError
from vidqa.video.decode import decode_frames
from vidqa.models.clip_model import encode_images, encode_texts, load_clip
from vidqa.scoring.job import ScorerSpec
from vidqa.scoring.shard import prepare_scorers
from conftest import run_shard
from vidqa.video.probe import probe_video
from vidqa.scorers import build_scorer
from vidqa.storage import Storage

BFYP = str(VIDEOS / "Bfyp0C02sko_000248_000258.mp4")  # h264 + aac stereo 44.1 kHz
COUNTER = str(VIDEOS / "counter.mp4")  # no audio track
DESCRIPTION = "oil sizzling in a frying pan"


def manifest(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return Storage().list_videos(str(path))


def stored(engine, scorer="video_audio"):
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT v.uri, s.metric, s.value, s.details FROM scores s JOIN clips c ON c.id = s.clip_id "
            "JOIN videos v ON v.id = c.video_id WHERE s.scorer = :s ORDER BY v.uri, s.metric"), {"s": scorer}).all()
    return {(uri, metric): (value, details) for uri, metric, value, details in rows}


def numpy_sims(clip, video, frame_indices, text, flip="none"):
    frames = decode_frames(video, probe_video(video), frame_indices).array
    if flip == "horizontal":
        frames = np.concatenate([frames, np.ascontiguousarray(frames[:, :, ::-1])])
    t = encode_texts(clip, [text]).double().numpy()[0]
    return encode_images(clip, frames).double().numpy() @ t


def test_decode_audio_is_mono_resampled_and_spans_the_request(tmp_path):
    wav = tmp_path / "tone.wav"
    run_ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=3", "-ac", "2", str(wav))
    whole = decode_audio(str(wav), 16000)
    assert whole.samples.dtype == np.float32 and whole.samples.ndim == 1
    assert abs(whole.samples.size - 3 * 16000) <= 16
    part = decode_audio(str(wav), 8000, offset_s=1.0, duration_s=0.5)
    assert abs(part.samples.size - 4000) <= 8
    # A 440 Hz tone: the spectrum's peak says the resampled samples are the same tone.
    spectrum = np.abs(np.fft.rfft(whole.samples.astype(np.float64)))
    assert np.fft.rfftfreq(whole.samples.size, 1 / 16000)[spectrum.argmax()] == pytest.approx(440, abs=2)
    with pytest.raises(VideoError, match="no audio track"):
        decode_audio(COUNTER, 16000)


def test_provided_description_against_numpy_with_pass_flag(tiny_clip, tmp_path, migrated_db):
    refs = manifest(tmp_path / "m.jsonl", [{"video_path": BFYP, "audio_text": DESCRIPTION},
                                           {"video_path": COUNTER, "audio_text": "a clock ticking"}])
    clip_cfg = {"model": tiny_clip[32], "pretrained": None}
    # A pass band around zero that one video's mean similarity falls in (checked below).
    spec = ScorerSpec("video_audio", {"clip": clip_cfg, "reduce": "max", "flip": "horizontal",
                                      "min_score": -0.2, "max_score": 0.2})
    engine = get_engine(migrated_db)
    outcomes = run_shard(engine, refs, prepare_scorers([spec], refs), None).outcomes
    assert [o.status for o in outcomes] == ["scored", "scored"]  # counter has no audio: a description suffices
    got = stored(engine)
    clip = load_clip(tiny_clip[32], None)
    for video, text in ((BFYP, DESCRIPTION), (COUNTER, "a clock ticking")):
        value, details = got[(video, "video_audio_sim")]
        assert len(details["frame_indices"]) == 3  # data-juicer's frame_num default
        sims = numpy_sims(clip, video, details["frame_indices"], text, flip="horizontal")
        assert value == pytest.approx(sims.max(), abs=1e-5)
        assert details["sim_avg"] == pytest.approx(sims.mean(), abs=1e-5)
        assert details["audio_text"] == text and details["audio_text_from"] == "field:audio_text"
        passed, _ = got[(video, "video_audio_pass")]
        assert passed == float(-0.2 <= sims.max() <= 0.2)


def test_speech_recognition_over_the_videos_own_track(tiny_clip, audio_models, tmp_path, migrated_db):
    from transformers import pipeline

    refs = manifest(tmp_path / "m.jsonl", [{"video_path": BFYP}, {"video_path": COUNTER}])
    spec = ScorerSpec("video_audio", {"clip": {"model": tiny_clip[32], "pretrained": None},
                                      "audio": {"model": audio_models["asr"]}})
    tech = ScorerSpec("technical", {"sampling": {"n": 2}})
    engine = get_engine(migrated_db)
    outcomes = run_shard(engine, refs, prepare_scorers([spec, tech], refs), None).outcomes
    assert [o.status for o in outcomes] == ["scored", "scored"]
    got = stored(engine)
    value, details = got[(BFYP, "video_audio_sim")]

    # Independently: the track copied out losslessly (float WAV), then transformers' own
    # ffmpeg reader resamples it (the whole 10 s: under max_audio_s).
    wav = tmp_path / "track.wav"
    run_ffmpeg("-i", BFYP, "-vn", "-c:a", "pcm_f32le", str(wav))
    asr = pipeline("automatic-speech-recognition", model=audio_models["asr"])
    expected = " ".join(asr(wav.read_bytes())["text"].split())
    assert expected and details["audio_text"] == expected
    assert details["audio_text_from"] == f"model:{audio_models['asr']}" and details["audio_source"] == "video"
    sims = numpy_sims(load_clip(tiny_clip[32], None), BFYP, details["frame_indices"], expected)
    assert value == pytest.approx(sims.mean(), abs=1e-5)

    # counter.mp4 has no audio: a failure of this scorer only, the video and technical are fine.
    assert (COUNTER, "video_audio_sim") not in got and stored(engine, "technical")
    with engine.connect() as conn:
        failures = conn.execute(sa.text("SELECT v.uri, f.scorer, f.reason FROM scorer_failures f "
                                        "JOIN clips c ON c.id = f.clip_id JOIN videos v ON v.id = c.video_id")).all()
        statuses = dict(conn.execute(sa.text("SELECT uri, status FROM videos")).all())
    assert failures == [(COUNTER, "video_audio", "no audio track in the video")]
    assert statuses == {BFYP: "ok", COUNTER: "ok"}
    # A rerun recomputes nothing, the recorded failure included.
    again = run_shard(engine, refs, prepare_scorers([spec, tech], refs), None).outcomes
    assert [o.status for o in again] == ["skipped", "skipped"]


def test_separate_audio_file_per_clip_and_audio_classification(tiny_clip, audio_models, tmp_path, migrated_db):
    from transformers import pipeline

    tone = tmp_path / "tone.m4a"
    run_ffmpeg("-f", "lavfi", "-i", "sine=frequency=300:duration=3", "-c:a", "aac", str(tone))
    refs = manifest(tmp_path / "m.jsonl", [{"video_path": COUNTER, "audio_path": "tone.m4a"}])
    spec = ScorerSpec("video_audio", {
        "clip": {"model": tiny_clip[32], "pretrained": None}, "sampling": {"method": "keyframes"},
        "audio": {"model": audio_models["classifier"], "task": "audio-classification", "top_k": 2},
    })
    engine = get_engine(migrated_db)
    clips = {"method": "windows", "window_s": 1.5, "min_s": 1.0}
    (outcome,) = run_shard(engine, refs, prepare_scorers([spec], refs), None, clip_spec=clips_spec(clips)).outcomes
    assert outcome.status == "scored" and outcome.clips == 2
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT c.start_time_s, s.details FROM scores s JOIN clips c ON c.id = s.clip_id "
            "WHERE s.metric = 'video_audio_sim' ORDER BY c.start_time_s")).all()
    assert [round(r[0], 2) for r in rows] == [0.0, 1.5]
    classify = pipeline("audio-classification", model=audio_models["classifier"])
    for start, details in rows:
        assert details["audio_source"] == str(tone) and details["audio_offset_s"] == pytest.approx(start, abs=1e-6)
        audio = decode_audio(str(tone), 16000, start, 1.5)
        labels = classify({"raw": audio.samples, "sampling_rate": 16000}, top_k=2)
        assert details["audio_text"] == "the sound of " + ", ".join(p["label"] for p in labels)
        assert all(p["label"] in LABELS for p in labels)


def clips_spec(data):
    from vidqa.video.clips import ClipSpec

    return ClipSpec.model_validate(data)


def test_no_description_and_no_model_is_a_clear_scorer_failure(tiny_clip, tmp_path, migrated_db):
    refs = manifest(tmp_path / "m.jsonl", [{"video_path": BFYP}])
    spec = ScorerSpec("video_audio", {"clip": {"model": tiny_clip[32], "pretrained": None}})
    engine = get_engine(migrated_db)
    (outcome,) = run_shard(engine, refs, prepare_scorers([spec], refs), None).outcomes
    assert outcome.status == "scored" and outcome.scores_written == 0
    with engine.connect() as conn:
        (reason,) = conn.execute(sa.text("SELECT reason FROM scorer_failures")).scalars().all()
    assert "no 'audio_text' audio description" in reason and "audio.model" in reason


def test_missing_audio_model_fails_before_any_video(tiny_clip, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDQA_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ScorerError) as err:
        build_scorer("video_audio", {"clip": {"model": tiny_clip[32], "pretrained": None},
                                     "audio": {"model": "openai/whisper-tiny"}}).config_hash
    message = str(err.value)
    assert "openai/whisper-tiny" in message and "hf download openai/whisper-tiny" in message
    assert str(tmp_path / "models" / "hf-hub" / "openai" / "whisper-tiny") in message
    assert "vidqa models download" in message
