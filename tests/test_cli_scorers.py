"""The CLI with model scorers: flags over a config file, the missing-weights stop, and the
offline-preparation commands."""

import json

import sqlalchemy as sa
import yaml

from conftest import VIDEOS, vidqa_cli
from vidqa.db import get_engine


def test_missing_weights_stop_the_run_before_any_video(tmp_path, migrated_db, prefect_api_url):
    env = {"VIDQA_DATABASE_URL": migrated_db, "PREFECT_API_URL": prefect_api_url,
           "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "VIDQA_MODELS_DIR": str(tmp_path / "models")}
    proc = vidqa_cli("run", str(VIDEOS), "--scorers", "technical,emscore", env=env, check=False)
    assert proc.returncode == 2
    message = " ".join(proc.stderr.split())
    assert "CLIP weights for ViT-B-32 (pretrained='openai') are not available offline" in message
    assert "hf download timm/vit_base_patch32_clip_224.openai" in message
    assert "vidqa models download" in message
    with get_engine(migrated_db).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM videos")).scalar() == 0

    plan = vidqa_cli("models", "download", "--dir", str(tmp_path / "models"), "--dry-run", env=env).stdout
    assert "timm/vit_base" in plan and "timm/vit_large" in plan and "sac+logos" in " ".join(plan.split())


def test_config_file_with_flag_overrides(tiny_clip, tmp_path, migrated_db, prefect_api_url):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"video_path": str(VIDEOS / "counter.mp4"), "prompt": "digits"}) + "\n")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "scorers": ["text_video"],
        "text_video": {"clip": {"model": tiny_clip[32], "pretrained": None}, "reduce": "max",
                       "sampling": {"method": "uniform", "n": 8}},
    }))
    env = {"VIDQA_DATABASE_URL": migrated_db, "PREFECT_API_URL": prefect_api_url}
    vidqa_cli("run", str(manifest), "--config", str(config), "--sampling", "every_n_frames:10", env=env)
    with get_engine(migrated_db).connect() as conn:
        ((details, config_json),) = conn.execute(sa.text(
            "SELECT s.details, c.config FROM scores s JOIN scorer_configs c USING (config_hash)")).all()
    assert details["frame_indices"] == [0, 10, 20]  # the flag replaced the file's uniform:8
    assert config_json["config"]["reduce"] == "max"  # the file's other settings stayed
    bad = vidqa_cli("run", str(manifest), "--sampling", "every:3", env=env, check=False)
    assert bad.returncode == 2 and "use uniform:N" in bad.stderr


def test_video_audio_from_the_cli_with_an_audio_model(tiny_clip, audio_models, tmp_path, migrated_db, prefect_api_url):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in (
        {"video_path": str(VIDEOS / "Bfyp0C02sko_000248_000258.mp4")},
        {"video_path": str(VIDEOS / "counter.mp4"), "audio_text": "a clock ticking"},
    )) + "\n")
    env = {"VIDQA_DATABASE_URL": migrated_db, "PREFECT_API_URL": prefect_api_url}
    vidqa_cli("run", str(manifest), "--scorers", "video_audio", "--clip-model", f"{tiny_clip[32]}@",
              "--audio-model", audio_models["asr"], env=env)
    with get_engine(migrated_db).connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT v.uri, s.details->>'audio_text_from', s.details->>'audio_text' FROM scores s "
            "JOIN clips c ON c.id = s.clip_id JOIN videos v ON v.id = c.video_id "
            "WHERE s.metric = 'video_audio_sim' ORDER BY v.uri")).all()
    assert [(r[0].rsplit("/", 1)[-1], r[1]) for r in rows] == [
        ("Bfyp0C02sko_000248_000258.mp4", f"model:{audio_models['asr']}"), ("counter.mp4", "field:audio_text")]
    assert rows[0][2] and rows[1][2] == "a clock ticking"

    plan = vidqa_cli("models", "download", "--dir", str(tmp_path / "models"), "--scorers", "video_audio",
                     "--audio-model", "openai/whisper-tiny", "--dry-run", env={**env, "COLUMNS": "400"}).stdout
    plan = " ".join(plan.split())
    assert "hf://openai/whisper-tiny" in plan and "hf-hub/openai/whisper-tiny" in plan
