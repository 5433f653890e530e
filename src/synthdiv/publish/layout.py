"""The published dataset folder: the one place that names its paths (:class:`PublishedDir`).

A published folder is self-contained and independent of the run it came from (no :class:`~synthdiv.core.rundir.RunDir`
path appears in it)::

    DIR/README.md                     the dataset card (Hugging Face YAML header + body)
    DIR/croissant.json                Croissant 1.1 metadata with the Responsible-AI fields
    DIR/data/shard-NNNNNN.tar         the WebDataset shards: <key>.jpg, <key>.cls, <key>.json per image
    DIR/metadata/shard-NNNNNN.parquet one row per image of the shard of the same name (METADATA_SCHEMA)
    DIR/recipe/config.yaml            the resolved run config, machine paths and secrets removed
    DIR/recipe/classes.jsonl          the resolved classes: each description and how an ambiguous name was settled
    DIR/recipe/prompts.parquet        every prompt (and recipe/styles.json, the style vocabulary)
    DIR/recipe/plan.parquet           every planned image: class, prompt, seed, shard
    DIR/real/class-NNNN.tar           the real images, only with ``publish --include-real``

It is written as ``DIR.partial`` and renamed to ``DIR`` when complete (:attr:`PublishedDir.partial`).
"""

from __future__ import annotations

from pathlib import Path

from synthdiv.core.rundir import shard_name

__all__ = ["PublishedDir", "PARTIAL_SUFFIX"]

PARTIAL_SUFFIX = ".partial"


class PublishedDir:
    """Paths of a published dataset folder rooted at ``root``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @property
    def partial(self) -> Path:
        """Where the folder is written before it is complete (renamed to :attr:`root` at the end)."""
        return self.root.with_name(self.root.name + PARTIAL_SUFFIX)

    @property
    def card(self) -> Path:
        return self.root / "README.md"

    @property
    def croissant(self) -> Path:
        return self.root / "croissant.json"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def metadata(self) -> Path:
        return self.root / "metadata"

    @property
    def recipe(self) -> Path:
        return self.root / "recipe"

    @property
    def real(self) -> Path:
        return self.root / "real"

    def shard_tar(self, shard: int) -> Path:
        return self.data / f"{shard_name(shard)}.tar"

    def metadata_part(self, shard: int) -> Path:
        return self.metadata / f"{shard_name(shard)}.parquet"

    def recipe_file(self, name: str) -> Path:
        """``config.yaml``, ``classes.jsonl``, ``prompts.parquet``, ``styles.json`` or ``plan.parquet``."""
        return self.recipe / name

    def real_tar(self, cls: int) -> Path:
        return self.real / f"class-{int(cls):04d}.tar"

    def shards(self) -> list[int]:
        """The shard numbers of the published tars, in order."""
        return sorted(int(p.stem.split("-")[1]) for p in self.data.glob("shard-*.tar"))
