"""The database: connection (embedded or external Postgres), schema, migrations, and every SQL
statement vidqa runs (repository, wide views, export, report queries)."""

from vidqa.db.engine import database_url, get_engine
from vidqa.db.migrate import downgrade, upgrade

__all__ = ["database_url", "get_engine", "upgrade", "downgrade"]
