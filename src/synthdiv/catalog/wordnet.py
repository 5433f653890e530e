"""WordNet 3.0 noun synsets by ImageNet id (``n02012849`` -> lemmas and gloss), read from the WordNet database files.

ImageNet ids are ``n`` + the synset's byte offset in ``data.noun``, so a lookup is one seek. The database comes from
Debian's ``wordnet-base`` (``/usr/share/wordnet``), or the folder in ``$WNSEARCHDIR``. No WordNet, no lookups:
:func:`lookup` returns ``None`` and callers fall back to timm's ImageNet metadata.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["Synset", "lookup", "wordnet_dir", "WNID_RE"]

WNID_RE = re.compile(r"^n\d{8}$")
_CANDIDATES = ("/usr/share/wordnet", "/usr/local/share/wordnet", "/usr/share/wordnet/dict")


@dataclass(frozen=True)
class Synset:
    wnid: str
    lemmas: tuple[str, ...]
    gloss: str


@functools.cache
def wordnet_dir() -> Path | None:
    """The folder holding ``data.noun``, or None when WordNet is not installed."""
    env = os.environ.get("WNSEARCHDIR")
    for folder in ([env] if env else []) + list(_CANDIDATES):
        if folder and (Path(folder) / "data.noun").is_file():
            return Path(folder)
    return None


def lookup(wnid: str) -> Synset | None:
    """The noun synset with ImageNet id ``wnid``, or None if WordNet is missing or has no such synset."""
    if not WNID_RE.match(wnid):
        return None
    folder = wordnet_dir()
    if folder is None:
        return None
    offset = int(wnid[1:])
    with open(folder / "data.noun", "rb") as fh:
        fh.seek(offset)
        line = fh.readline().decode("utf-8", errors="replace")
    fields = line.split(" ")
    if not fields or fields[0] != wnid[1:]:
        return None
    n_words = int(fields[3], 16)
    lemmas = tuple(fields[4 + 2 * i].replace("_", " ") for i in range(n_words))
    gloss = line.partition(" | ")[2].strip()
    return Synset(wnid=wnid, lemmas=lemmas, gloss=gloss)
