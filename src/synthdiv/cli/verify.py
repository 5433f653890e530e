"""``synthdiv verify``: read every shard of the run and check it against the manifest (one line per damaged shard)."""

from __future__ import annotations

from typing import Annotated

import typer

from synthdiv.cli import _hints
from synthdiv.cli._options import ConfigOpt, RunDirOpt, SetOpt, load

__all__ = ["verify", "register"]


def verify(
    config: ConfigOpt,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    repair: Annotated[
        bool, typer.Option("--repair", help="Remove each damaged shard's manifest part so `generate` redoes it.")
    ] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Shards read at once.")] = 4,
) -> None:
    """Read every generated shard: each image where the manifest says, decodable, with its metadata.

    Prints one line per damaged shard and exits with code 1 when there is any.
    """
    from contextlib import nullcontext

    from synthdiv.core.lock import run_lock
    from synthdiv.core.rundir import RunDir
    from synthdiv.stages.generate.verify import verify_shards

    cfg = load(config, set_, run_dir)
    run = RunDir(cfg.run_dir)
    with run_lock(run, "generate") if repair else nullcontext():  # repair removes files: no generate at once
        result = verify_shards(run, repair=repair, workers=workers)
    for line in result.lines():
        typer.echo(_hints.complete(line))
    summary = f"verified {result.shards} shards: {result.images} images intact, {len(result.damaged)} shards damaged"
    if result.repaired:
        summary += f", {len(result.repaired)} set to be redone by `synthdiv generate`"
    typer.echo(_hints.complete(summary))
    if not result.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
