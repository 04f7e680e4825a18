"""The CLI follows the usual conventions: --version, -h, --format json, -q, --strict, and
`export --out -` writing rows to standard output (messages on standard error)."""

import json
from importlib.metadata import version

from conftest import VIDEOS, vidqa_cli


def test_version_and_short_help():
    assert vidqa_cli("--version").stdout.strip() == f"vidqa {version('vidqa')}"
    for args in (("-h",), ("run", "-h"), ("db", "upgrade", "-h"), ("dedup", "-h")):
        assert "Usage: vidqa" in vidqa_cli(*args).stdout, args


def test_run_json_quiet_strict_and_export_to_stdout(tmp_path, migrated_db, prefect_api_url):
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "counter.mp4").symlink_to(VIDEOS / "counter.mp4")
    (folder / "broken.mp4").write_bytes(b"")
    env = {"VIDQA_DATABASE_URL": migrated_db, "PREFECT_API_URL": prefect_api_url}
    strict = vidqa_cli("run", str(folder), "-n", "3", "--format", "json", "--strict", env=env, check=False)
    assert strict.returncode == 1  # one video failed: --strict says so
    summary = json.loads(strict.stdout)
    assert (summary["n_videos"], summary["n_scored"], summary["n_failed"]) == (2, 1, 1)
    assert summary["failures"][0]["uri"].endswith("broken.mp4")
    quiet = vidqa_cli("run", str(folder), "-n", "3", "-q", env=env)  # not strict: something scored
    assert quiet.stdout == ""

    out = vidqa_cli("export", "--where", "sharpness is not null", "--out", "-", env=env)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["uri"].endswith("counter.mp4") and rows[0]["sharpness"] > 0
    assert "1 rows written to standard output" in out.stderr
    bad = vidqa_cli("export", "--where", "true", "--out", "-", "--format", "parquet", env=env, check=False)
    assert bad.returncode == 2 and "standard output takes jsonl only" in bad.stderr
