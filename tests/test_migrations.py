"""Migrations up and down on a real Postgres, and the CLI's db commands."""

import sqlalchemy as sa

from conftest import REPO, vidqa_cli
from vidqa.db import get_engine, upgrade, downgrade
from vidqa.db.migrate import current_revision, head_revision
from vidqa.db.tables import metadata

TABLES = {"runs", "videos", "clips", "scorer_configs", "scores", "scorer_failures", "video_splits", "score_inputs",
          "reference_sets", "feature_sets", "metric_values", "run_shards", "video_locations", "video_claims",
          "embedding_models", "clip_embeddings", "dedup_settings", "duplicate_groups"}


def user_tables(url):
    return set(sa.inspect(get_engine(url)).get_table_names()) - {"alembic_version"}


def test_upgrade_creates_the_schema_the_code_queries(database_url):
    upgrade("head", database_url)
    assert current_revision(database_url) == head_revision()
    inspector = sa.inspect(get_engine(database_url))
    assert user_tables(database_url) == TABLES
    for table in metadata.sorted_tables:
        live = {c["name"] for c in inspector.get_columns(table.name)}
        assert live == {c.name for c in table.columns}, table.name
    uniques = {u["name"] for u in inspector.get_unique_constraints("scores")}
    assert "uq_scores_identity" in uniques
    assert "ix_scores_metric_value" in {i["name"] for i in inspector.get_indexes("scores")}


def test_downgrade_to_base_and_back(database_url):
    upgrade("head", database_url)
    downgrade("base", database_url)
    assert user_tables(database_url) == set()
    assert current_revision(database_url) is None
    upgrade("head", database_url)
    assert user_tables(database_url) == TABLES


def test_unique_identity_rejects_duplicate_scores(migrated_db):
    engine = get_engine(migrated_db)
    with engine.begin() as conn:
        vid = conn.execute(sa.text(
            "INSERT INTO videos (uri, content_id, status) VALUES ('/v.mp4', 'sha256:x', 'ok') RETURNING id")).scalar()
        clip = conn.execute(sa.text(
            "INSERT INTO clips (video_id, kind, start_frame, end_frame, start_time_s, end_time_s) "
            "VALUES (:v, 'video', 0, 10, 0, 1) RETURNING id"), {"v": vid}).scalar()
        conn.execute(sa.text("INSERT INTO scorer_configs (config_hash, scorer, config) VALUES ('h', 's', '{}')"))
        conn.execute(sa.text(
            "INSERT INTO scores (clip_id, scorer, config_hash, metric, value) VALUES (:c, 's', 'h', 'm', 1)"),
            {"c": clip})
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO scores (clip_id, scorer, config_hash, metric, value) VALUES (:c, 's', 'h', 'm', 2)"),
                {"c": clip})
    except sa.exc.IntegrityError as exc:
        assert "uq_scores_identity" in str(exc)
    else:
        raise AssertionError("duplicate score identity was accepted")


def test_cli_db_commands(database_url):
    assert vidqa_cli("db", "url").stdout.strip().split("@")[-1] == database_url.split("@")[-1]
    assert f"revision {head_revision()}" in vidqa_cli("db", "upgrade").stdout
    assert user_tables(database_url) == TABLES
    assert head_revision() in vidqa_cli("db", "current").stdout
    vidqa_cli("db", "downgrade", "base", "--yes")
    assert user_tables(database_url) == set()


def test_upgrade_from_0001_keeps_scored_clips(database_url):
    """A database scored with schema 0001 keeps its clips and scores through 0002."""
    upgrade("0001", database_url)
    engine = get_engine(database_url)
    with engine.begin() as conn:
        vid = conn.execute(sa.text(
            "INSERT INTO videos (uri, content_id, status) VALUES ('/v.mp4', 'sha256:x', 'ok') RETURNING id")).scalar()
        conn.execute(sa.text(
            "INSERT INTO clips (video_id, kind, start_frame, end_frame, start_time_s, end_time_s) "
            "VALUES (:v, 'video', 0, 10, 0, 1)"), {"v": vid})
    upgrade("head", database_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT kind, split_hash, end_frame FROM clips")).all()
    assert [tuple(r) for r in rows] == [("video", "", 10)]
    downgrade("0001", database_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM clips")).scalar() == 1


def test_every_table_and_column_says_what_it_is_and_the_readme_shows_it(migrated_db):
    import re

    from vidqa.db.schema_doc import described_schema, schema_markdown

    described = described_schema(get_engine(migrated_db))
    assert {t for t, _, _ in described} == TABLES
    missing = [f"{t}.{c}" for t, about, columns in described for c, _, text in columns if not text] + \
        [t for t, about, _ in described if not about]
    assert missing == []
    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- schema:begin[^>]*-->\n(.*?)<!-- schema:end -->", readme, re.S).group(1)
    assert block == schema_markdown(get_engine(migrated_db)), "regenerate the README's schema section: vidqa db schema"
    assert f"## The schema (revision {head_revision()})" in readme
