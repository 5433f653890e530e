"""The class record: one row of ``classes.jsonl``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = ["ClassRecord"]


@dataclass(frozen=True)
class ClassRecord:
    """A class of the run. ``index`` is the training label; ``real_dir`` holds its real images, if any."""

    index: int
    name: str
    wnid: str | None = None
    definition: str | None = None
    real_images: int = 0
    real_dir: str | None = None
    lemmas: tuple[str, ...] | None = None  # every lemma of the WordNet synset, the name first (wnid classes)
    hypernym: str | None = None  # the first lemma of the synset's hypernym ("wading bird" for the crane bird)
    line: int | None = None  # where it came from in a class file (for error messages; not written)

    def to_json(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("line")
        row["lemmas"] = list(self.lemmas) if self.lemmas is not None else None
        return row

    def with_(self, **changes: Any) -> ClassRecord:
        return replace(self, **changes)
