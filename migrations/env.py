"""Alembic environment: the engine comes from vidqa (embedded or VIDQA_DATABASE_URL)."""

from alembic import context

from vidqa.db.tables import metadata

config = context.config
target_metadata = metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        from vidqa.db.engine import get_engine

        url = config.get_main_option("sqlalchemy.url") or None
        engine = get_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("vidqa migrations run online only: use `vidqa db upgrade`.")
run_migrations_online()
