"""`vidqa models`: the weights a run needs, checked here or fetched for offline machines."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from vidqa.cli.common import console, err_console
from vidqa.cli.params import build_params, load_config
from vidqa.scorers import SCORER_NAMES

models_app = typer.Typer(help="Model weights: what a run needs, and fetching it for offline machines.",
                         no_args_is_help=True)

def _configured_scorers(config: Optional[str], scorers: Optional[str], clip_model: Optional[str],
                        audio_model: Optional[str], videoscore_model: Optional[str]):
    """The scorers a run with these settings would build (cheap: nothing is loaded)."""
    from vidqa.scorers import build_scorer

    params = build_params("-", load_config(config), scorers=scorers, clip_model=clip_model, audio_model=audio_model,
                          videoscore_model=videoscore_model)
    return [build_scorer(name, getattr(params, name)) for name in params.scorers]


@models_app.command("download")
def models_download(
    directory: str = typer.Option(..., "--dir", "-d", help="Models directory to fill (then set VIDQA_MODELS_DIR to it)."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML/JSON file of flow parameters."),
    scorers: Optional[str] = typer.Option(None, "--scorers", "-s", help="Comma-separated scorers (default: all)."),
    clip_model: Optional[str] = typer.Option(None, "--clip-model", help="As for `vidqa run`."),
    audio_model: Optional[str] = typer.Option(None, "--audio-model", help="As for `vidqa run`."),
    videoscore_model: Optional[str] = typer.Option(None, "--videoscore-model", help="As for `vidqa run`."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be fetched."),
) -> None:
    """Fetch the weights of every configured scorer into DIR (run it where there is network)."""
    from pathlib import Path

    chosen = _configured_scorers(config, scorers or ",".join(SCORER_NAMES), clip_model, audio_model, videoscore_model)
    declared = [w for scorer in chosen for w in scorer.declared_weights.values()]
    files = list(dict.fromkeys(f for w in declared for f in w.files(Path(directory))))
    table = Table("model", "from", "to", "present")
    for f in files:
        table.add_row(f.what, f.source, str(f.target), "yes" if f.target.exists() else "no")
    console.print(table)
    if dry_run:
        return
    from vidqa.models.download import download

    try:
        download(files)
    except Exception as exc:  # no network, auth, disk: say which and stop
        err_console.print(f"[red]download failed:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1)
    console.print(f"done; now: export VIDQA_MODELS_DIR={directory}")


@models_app.command("check")
def models_check(
    config: Optional[str] = typer.Option(None, "--config", "-c", help="YAML/JSON file of flow parameters."),
    scorers: Optional[str] = typer.Option(None, "--scorers", "-s", help="Comma-separated scorers."),
    clip_model: Optional[str] = typer.Option(None, "--clip-model", help="As for `vidqa run`."),
    audio_model: Optional[str] = typer.Option(None, "--audio-model", help="As for `vidqa run`."),
    videoscore_model: Optional[str] = typer.Option(None, "--videoscore-model", help="As for `vidqa run`."),
) -> None:
    """Load every configured model as a run would; say what is missing and how to get it."""
    from vidqa.errors import ScorerError

    failed = False
    for scorer in _configured_scorers(config, scorers, clip_model, audio_model, videoscore_model):
        try:
            scorer.setup()
            console.print(f"{scorer.name}: ready")
        except ScorerError as exc:
            failed = True
            err_console.print(f"[red]{scorer.name}:[/red] {exc}")
    if failed:
        raise typer.Exit(2)
