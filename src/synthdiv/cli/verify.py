"""``synthdiv verify``: read every shard of the run and check it against the manifest (one line per damaged shard);
with ``--dataset DIR``, check a published dataset folder against its own metadata and re-create a sample of it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthdiv.cli import _hints
from synthdiv.cli._options import RunDirOpt, SetOpt, load

__all__ = ["verify", "register"]


def verify(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="The run config (YAML).", exists=False, dir_okay=False)
    ] = None,
    set_: SetOpt = None,
    run_dir: RunDirOpt = None,
    repair: Annotated[
        bool, typer.Option("--repair", help="Remove each damaged shard's manifest part so `generate` redoes it.")
    ] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Shards read at once.")] = 4,
    dataset: Annotated[
        Path | None, typer.Option("--dataset", help="A published dataset folder to check instead of a run.",
                                  file_okay=False)
    ] = None,
    regenerate: Annotated[
        int, typer.Option("--regenerate", min=0, help="--dataset: images made again from the recipe and compared.")
    ] = 10,
    model: Annotated[
        str | None, typer.Option("--model", help="--dataset: where the recipe's generator model is on this machine.")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="--dataset: the device that makes the images again.")] = "cpu",
    tolerance: Annotated[
        float, typer.Option("--tolerance", min=0, help="--dataset: mean pixel difference (0-255) still a match.")
    ] = 1.0,
) -> None:
    """Read every generated shard: each image where the manifest says, decodable, with its metadata.

    Prints one line per damaged shard and exits with code 1 when there is any. With ``--dataset DIR``: every image of
    a published folder present once, at its byte range, with its digest and label, and ``--regenerate`` images made
    again from its recipe; exit code 1 on any damage or mismatch.
    """
    from contextlib import nullcontext

    from synthdiv.errors import ConfigError

    if dataset is not None:
        _verify_dataset(dataset, regenerate, model, device, tolerance)
        return
    if config is None:
        raise ConfigError("synthdiv verify: expected --config (a run) or --dataset (a published folder)")

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


def _verify_dataset(folder: Path, regenerate: int, model: str | None, device: str, tolerance: float) -> None:
    from synthdiv.publish.check import check_dataset
    from synthdiv.publish.regenerate import regenerate_sample

    result = check_dataset(folder)
    for line in result.problems:
        typer.echo(line)
    shown = len(result.problems)
    hidden = sum(result.counts.values()) - shown
    if hidden:
        typer.echo(f"... and {hidden} more problems")
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(result.counts.items())) or "no damage"
    typer.echo(f"verified {folder}: {result.shards} shards, {result.images} images intact; {kinds}")
    ok = result.ok
    if regenerate and ok:
        again = regenerate_sample(folder, regenerate, model, device, tolerance)
        for line in again.different:
            typer.echo(line)
        left = f" ({again.left_out} images could not be sampled: image-to-image or another generator)" \
            if again.left_out else ""
        typer.echo(f"made again from the recipe: {again.checked} images, {again.exact} exact, {again.close} within "
                   f"the tolerance, {len(again.different)} different{left}")
        ok = again.ok
    elif regenerate:
        typer.echo("no image made again: fix the damage first")
    if not ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
