"""The root ``vidqa`` command: every command group registered in one place."""

from __future__ import annotations

import warnings
from typing import Optional

import typer

from vidqa.cli import curate, run
from vidqa.cli.db import db_app
from vidqa.cli.models import models_app
from vidqa.cli.sets import metrics_app, reference_app

# pgserver asks platformdirs for a runtime dir; on headless machines that only warns.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

app = typer.Typer(help="Score video datasets; scores land in Postgres.", no_args_is_help=True, add_completion=False,
                  context_settings={"help_option_names": ["-h", "--help"]})  # every subcommand inherits -h


def _version(value: bool) -> None:
    if value:
        from vidqa import __version__

        typer.echo(f"vidqa {__version__}")
        raise typer.Exit()


@app.callback()
def main(version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")) -> None:
    """Score video datasets; scores land in Postgres."""


for command in (run.run, run.videos, run.scores, run.export, curate.dedup, curate.search):
    app.command()(command)
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
app.add_typer(reference_app, name="reference")
app.add_typer(metrics_app, name="metrics")
