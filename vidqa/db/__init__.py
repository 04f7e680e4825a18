"""Database layer: connection (embedded or external Postgres), schema, migrations, queries."""

from vidqa.db.engine import database_url, get_engine
from vidqa.db.migrate import downgrade, upgrade

__all__ = ["database_url", "get_engine", "upgrade", "downgrade"]
