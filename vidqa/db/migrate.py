"""Apply Alembic migrations (``migrations/``) programmatically."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from vidqa.db.engine import get_engine


def migrations_dir() -> Path:
    import migrations

    return Path(migrations.__file__).resolve().parent


def alembic_config(url: str | None = None) -> Config:
    cfg = _plain_config()
    # env.py takes the engine from here rather than from an ini file, so the
    # embedded server's socket URL never has to be written anywhere.
    cfg.attributes["engine"] = get_engine(url)
    return cfg


# pg_advisory_lock key for schema changes: b"vidqamig" read as an integer.
MIGRATION_LOCK_KEY = int.from_bytes(b"vidqamig", "big")


@contextmanager
def _migration_lock(url: str | None):
    """Hold a session-level advisory lock while the schema changes, so two processes on a
    fresh database queue instead of both creating ``alembic_version``."""
    with get_engine(url).connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_KEY})
            conn.commit()


def upgrade(revision: str = "head", url: str | None = None) -> None:
    with _migration_lock(url):
        command.upgrade(alembic_config(url), revision)


def downgrade(revision: str, url: str | None = None) -> None:
    with _migration_lock(url):
        command.downgrade(alembic_config(url), revision)


def current_revision(url: str | None = None) -> str | None:
    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    return ScriptDirectory.from_config(_plain_config()).get_current_head()


def _plain_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    return cfg


def ensure_schema(url: str | None = None) -> None:
    """Bring the database to the newest schema (idempotent; used by ``vidqa run``)."""
    if current_revision(url) != head_revision():
        upgrade("head", url)  # a no-op when another process upgraded while this one waited
