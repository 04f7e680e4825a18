"""The house keeps its shape: import contracts (checked by import-linter, and shown to catch
a violation), every command reachable as `vidqa ...` and `python -m vidqa.cli ...`, scorers
that are cheap to name and load on setup(), and one resident-model registry that
release_resident_scorers() empties."""

import gc
import importlib
import pkgutil
import shutil
import subprocess
import sys
import weakref

import pytest

from conftest import REPO, SHARED

import vidqa


def lint_imports(cwd, env=None):
    return subprocess.run([shutil.which("lint-imports") or "lint-imports"], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)


def test_import_contracts_hold():
    proc = lint_imports(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 3 kept, 0 broken." in proc.stdout


def test_import_contracts_catch_a_prefect_import_a_scorer_import_in_metrics_and_a_cycle(tmp_path):
    for name in ("vidqa", "flows", "tasks"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "vidqa" / "scoring" / "progress.py").write_text("import prefect\n")
    (tmp_path / "vidqa" / "metrics" / "lookup.py").write_text("from vidqa.scorers import base\n")
    (tmp_path / "vidqa" / "video" / "ledger_hint.py").write_text("from vidqa.scoring import ledger\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(tmp_path)
    proc = lint_imports(tmp_path, env)
    assert proc.returncode != 0
    assert "Contracts: 0 kept, 3 broken." in proc.stdout, proc.stdout
    assert "vidqa.scoring.progress -> prefect" in proc.stdout


def test_every_package_says_what_it_is():
    for info in pkgutil.walk_packages(vidqa.__path__, "vidqa."):
        if info.ispkg:
            doc = importlib.import_module(info.name).__doc__
            assert doc and 1 <= len(doc.strip().splitlines()) <= 6, info.name


COMMANDS = [[], ["run"], ["videos"], ["scores"], ["export"], ["db"], ["db", "upgrade"], ["db", "downgrade"],
            ["db", "current"], ["db", "refresh-views"], ["db", "url"], ["models"], ["models", "download"],
            ["models", "check"], ["reference"], ["reference", "build"], ["reference", "list"], ["metrics"],
            ["metrics", "compute"], ["metrics", "list"], ["metrics", "detectors"]]


@pytest.mark.parametrize("entry", ["vidqa", "module"])
def test_every_command_answers_help_as_vidqa_and_as_python_m(entry):
    base = [shutil.which("vidqa")] if entry == "vidqa" else [sys.executable, "-m", "vidqa.cli"]
    for command in COMMANDS:
        proc = subprocess.run([*base, *command, "--help"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (command, proc.stdout, proc.stderr)
        assert "Usage: vidqa " + " ".join(command) in " ".join(proc.stdout.split()), (command, proc.stdout)


def test_the_registry_is_the_one_list_of_scorer_names():
    from flows.score_videos import ScoreVideosParams
    from vidqa.cli.params import build_params
    from vidqa.scorers import REGISTRY, SCORER_NAMES, SCORERS

    assert list(SCORER_NAMES) == list(REGISTRY)
    schema = ScoreVideosParams.model_json_schema()
    assert schema["$defs"]  # the form: one settings section per registered scorer, titled from it
    for name in SCORER_NAMES:
        assert schema["properties"][name]["title"] == SCORERS[name].title != ""
        assert SCORERS[name].config_model.__name__ in schema["$defs"]
    listed = subprocess.run([shutil.which("vidqa"), "run", "--help"], capture_output=True, text=True).stdout
    assert all(name in " ".join(listed.split()) for name in SCORER_NAMES)
    params = build_params("-", {}, scorers=",".join(SCORER_NAMES))
    assert params.scorers == list(SCORER_NAMES)


def test_naming_a_scorer_loads_nothing_and_setup_loads_once(tiny_clip):
    from vidqa.models.resident import release_resident, resident_kinds
    from vidqa.scorers import build_scorer

    release_resident()
    scorer = build_scorer("text_video", {"clip": {"model": tiny_clip[32], "pretrained": None}})
    assert len(scorer.config_hash) == 16 and resident_kinds() == ["scorer"]  # named, nothing loaded
    scorer.setup()
    assert sorted(resident_kinds()) == ["clip", "scorer"]
    model = scorer.clip_model
    assert scorer.setup().clip_model is model  # once
    assert model.identity() == scorer.identity_record["clip"]  # the declared identity is the loaded one


def _loaded_models(tiny_clip, audio_models, detectors_dir):
    """Weak references to every kind of resident model, loaded as scoring loads them."""
    from vidqa.models.detectors import load_detector
    from vidqa.scorers import build_scorer

    clip = {"model": tiny_clip[32], "pretrained": None}
    scorers = [
        build_scorer("emscore", {"clip": clip, "idf": False}),
        build_scorer("video_audio", {"clip": clip, "audio": {"model": audio_models["asr"]}}),
        build_scorer("aesthetic", {"clip": {"model": tiny_clip[768], "pretrained": None},
                                   "head": str(SHARED / "models/laion-aesthetic/sa_0_4_vit_l_14_linear.pth")}),
    ]
    refs = [weakref.ref(s) for s in scorers]
    for scorer in scorers:
        refs += [weakref.ref(m) for m in scorer.setup().models.values()]
    refs.append(weakref.ref(load_detector("inception_v3_2015_12_05", detectors_dir)))
    return refs


def test_release_resident_scorers_leaves_no_model_referenced(tiny_clip, audio_models, tmp_path):
    from detector_fixtures import write_tiny_detectors
    from vidqa.models.resident import resident_kinds
    from vidqa.scorers import release_resident_scorers

    refs = _loaded_models(tiny_clip, audio_models, write_tiny_detectors(tmp_path / "detectors"))
    assert len(refs) == 3 + 5 + 1  # scorers; CLIP, CLIP + audio, CLIP + head; a detector
    assert all(r() is not None for r in refs)
    assert {"scorer", "clip", "audio", "aesthetic_head", "detector"} <= set(resident_kinds())
    release_resident_scorers()
    gc.collect()
    assert resident_kinds() == []
    assert [r() for r in refs if r() is not None] == []


def test_every_sql_statement_lives_under_db():
    import re

    statement = re.compile(r"\.execute\(|\bsa\.(select|insert|update|delete|text)\(|pg_insert|\bSELECT\s+\w")
    offenders = [f"{path.relative_to(REPO)}:{n}" for path in (REPO / "vidqa").rglob("*.py")
                 if "db" not in path.relative_to(REPO / "vidqa").parts[:1]
                 for n, line in enumerate(path.read_text().splitlines(), 1) if statement.search(line)]
    assert offenders == []
    assert statement.search((REPO / "vidqa" / "db" / "repository.py").read_text())  # the pattern finds SQL


def test_the_two_hashes_are_pinned(tmp_path):
    """Every stored identity is one of these two hashes; their output must never drift."""
    import hashlib
    import json

    from vidqa.hashing import file_sha256, json_sha256, stable_hash

    value = {"b": [1, 2.5, "x"], "a": None}
    compact = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    assert json_sha256(value) == hashlib.sha256(compact).hexdigest()
    assert stable_hash(value) == "cacedc786abc936f" == json_sha256(value)[:16]
    spaced = json.dumps(value, sort_keys=True).encode()  # the form CLIP configs, splits and feature sets use
    assert json_sha256(value, spaced=True) == hashlib.sha256(spaced).hexdigest() == (
        "05147f4c034266888060ee06fae0abe784ce883eb3b125b981d3fd9d4db2c568")

    data = bytes(range(256)) * 40000  # larger than one read chunk
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    named = blobs / hashlib.sha256(b"other").hexdigest()  # a Hugging Face cache blob: named by its hash
    named.write_bytes(b"other")
    (tmp_path / "snapshot.bin").symlink_to(named)
    assert file_sha256(tmp_path / "snapshot.bin") == hashlib.sha256(b"other").hexdigest()
