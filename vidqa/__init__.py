"""vidqa: score video datasets at scale; every value lands in Postgres, to filter with SQL.
The functional core (no Prefect outside ``vidqa.cli``); ``flows/`` and ``tasks/`` wrap it."""

__version__ = "0.1.0"
