"""Manifest sources (JSONL and CSV, as the seed operators read them) and unreadable local files."""

import csv
import json

import pytest
import sqlalchemy as sa

from conftest import VIDEOS
from vidqa.db import get_engine
from vidqa.scoring.job import ScorerSpec
from conftest import run_shard
from vidqa.storage import ManifestError, Storage


def test_jsonl_manifest_carries_text_fields_and_resolves_paths(tmp_path):
    (tmp_path / "audio").mkdir()
    rows = [
        {"video_path": str(VIDEOS / "Bfyp0C02sko_000248_000258.mp4"),
         "candidate": "A person is frying a pan of eggs that are colored pink and green.",
         "reference": "Two egg yolks are placed in food flavored white yolk on a pan until they are cooked.",
         "audio_path": "audio/a.wav", "audio_text": "sizzling"},
        {"video_path": "clips/x.mp4", "reference": ["one", "two"], "prompt": "p", "extra": 3},
        {"video_path": "s3://bucket/v/y.mp4", "candidate": "c"},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    refs = Storage().list_videos(str(manifest))
    assert [r.uri for r in refs] == [rows[0]["video_path"], str(tmp_path / "clips/x.mp4"), "s3://bucket/v/y.mp4"]
    assert refs[0].fields == {**{k: v for k, v in rows[0].items() if k != "video_path"},
                              "audio_path": str(tmp_path / "audio/a.wav")}
    assert refs[0].size == (VIDEOS / "Bfyp0C02sko_000248_000258.mp4").stat().st_size
    assert refs[1].fields["reference"] == ["one", "two"] and refs[1].fields["extra"] == 3
    assert refs[2].etag is None  # remote rows are resolved lazily, when scored


def test_csv_manifest_with_custom_video_column_and_list_cells(tmp_path):
    manifest = tmp_path / "m.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["video", "candidate", "reference"])
        w.writerow([str(VIDEOS / "counter.mp4"), "numbers, counting", json.dumps(["a counter", "digits"])])
        w.writerow(["video_90.mov", "", "just one"])
    refs = Storage().list_videos(str(manifest), video_key="video")
    assert refs[0].fields == {"candidate": "numbers, counting", "reference": ["a counter", "digits"]}
    assert refs[1].uri == str(tmp_path / "video_90.mov") and refs[1].fields == {"reference": "just one"}


@pytest.mark.parametrize("text, message", [
    ('{"video_path": "a.mp4"}\n{not json}\n', r"m.jsonl:2: not JSON"),
    ('{"video": "a.mp4"}\n', r"row 1 has no 'video_path' \(columns: video\)"),
    ('["a.mp4"]\n', r"m.jsonl:1: expected a JSON object"),
    ("\n", r"no rows"),
])
def test_malformed_manifests_say_where(tmp_path, text, message):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(text)
    with pytest.raises(ManifestError, match=message):
        Storage().list_videos(str(manifest))


def test_missing_and_unreadable_local_files_are_recorded(tmp_path, migrated_db):
    """A manifest row naming a missing file, a folder named like a video, and a dangling
    link each become a failed video with its reason; the good row is scored."""
    (tmp_path / "folder.mp4").mkdir()
    (tmp_path / "dangling.mp4").symlink_to(tmp_path / "nowhere.mp4")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps({"video_path": p}) for p in [
        str(VIDEOS / "video_90.mov"), "missing.mp4", "folder.mp4", "dangling.mp4"]))
    refs = Storage().list_videos(str(manifest))
    engine = get_engine(migrated_db)
    result = run_shard(engine, refs, [ScorerSpec("technical", {"sampling": {"n": 3}})], None)
    outcomes = {o.uri.rsplit("/", 1)[1]: (o.status, o.reason) for o in result.outcomes}
    assert outcomes == {
        "video_90.mov": ("scored", None),
        "missing.mp4": ("failed", "file not found"),
        "folder.mp4": ("failed", "is a directory, not a file"),
        "dangling.mp4": ("failed", "file not found"),
    }
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text(
            "SELECT uri, failure_stage || ': ' || failure_reason FROM videos WHERE status = 'failed'")).all())
    assert stored == {str(tmp_path / n): f"read: {r}" for n, (s, r) in outcomes.items() if s == "failed"}
