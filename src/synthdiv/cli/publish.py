"""``synthdiv publish``: a finished run as a dataset folder others can load, check and re-create
(docs/publishing.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthdiv.cli._options import SetOpt, load

__all__ = ["publish", "register"]


def publish(
    run_or_config: Annotated[Path, typer.Argument(
        help="A run directory (its recorded config.yaml is read) or a run config (YAML).", metavar="RUN_OR_CONFIG")],
    out: Annotated[Path, typer.Option("--out", help="The dataset folder to write (must not exist).")],
    view: Annotated[str | None, typer.Option(
        "--view", help="Publish only one view: 'train', a variant's name or a filter's name.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Publish every image, the filters as columns (the default).")
                    ] = False,
    include_real: Annotated[bool, typer.Option("--include-real", help="Also publish the run's real images.")] = False,
    no_mark: Annotated[bool, typer.Option(
        "--no-mark", help="Keep the images' bytes as generated (no XMP synthetic-media marking).")] = False,
    to_hub: Annotated[str | None, typer.Option(
        "--to-hub", help="Then upload the folder to this Hugging Face dataset repository (owner/name).")] = None,
    set_: SetOpt = None,
) -> None:
    """Write a self-contained dataset folder: shards, per-image metadata, recipe, dataset card and Croissant."""
    from synthdiv.errors import ConfigError, InputError
    from synthdiv.publish.build import publish as build
    from synthdiv.publish.hub import check_repo, hub_token, push
    from synthdiv.publish.views import ALL

    if view is not None and all_:
        raise ConfigError("--view and --all: choose one (--all publishes every image, --view one view of them)")
    if run_or_config.is_dir():
        config = run_or_config / "config.yaml"
        if not config.is_file():
            raise InputError(f"{run_or_config}: no config.yaml; not a synthdiv run directory (or pass its config)")
        cfg = load(config, set_, str(run_or_config))
    elif run_or_config.is_file():
        cfg = load(run_or_config, set_, None)
    else:
        raise InputError(f"{run_or_config}: not found; expected a run directory or a run config")
    token = hub_token(check_repo(to_hub)) if to_hub else None
    result = build(cfg, out, view=view or ALL, include_real=include_real, mark=not no_mark)
    typer.echo(f"published {result.images} images in {result.shards} shards to {result.path} "
               f"({result.marked} marked, {result.linked} shards linked)")
    if to_hub and token:
        typer.echo(f"uploaded to {push(result.path, to_hub, token)}")


def register(app: typer.Typer) -> None:
    app.command("publish")(publish)
