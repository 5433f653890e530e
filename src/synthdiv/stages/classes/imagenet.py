"""ImageNet-1k / -22k class lists, names and definitions from the metadata that timm ships (offline).

timm's ``data/_info`` folder holds the synset lists in label order and, for all ~21.8k synsets, their WordNet
lemmas and definitions. The WordNet database (:mod:`synthdiv.lexicon.wordnet`) answers for any other synset.
"""

from __future__ import annotations

import csv
import functools
import logging
import pkgutil

from synthdiv.lexicon.wordnet import hypernym_of, lookup
from synthdiv.stages.classes.records import ClassRecord

logger = logging.getLogger(__name__)

__all__ = ["imagenet_classes", "describe_wnid", "name_of_wnid", "lemmas_of_wnid", "hypernym_name", "imagenet_wnids"]

_SYNSET_FILES = {"imagenet-1k": "imagenet_synsets.txt", "imagenet-22k": "imagenet22k_synsets.txt"}


def _timm_info(filename: str) -> str:
    data = pkgutil.get_data("timm.data", f"_info/{filename}")
    if data is None:  # pragma: no cover - timm always ships these
        raise FileNotFoundError(f"timm does not ship _info/{filename}")
    return data.decode("utf-8")


@functools.cache
def imagenet_wnids(source: str) -> tuple[str, ...]:
    """The WordNet ids of ``imagenet-1k`` / ``imagenet-22k`` (also ``imagenet-r`` / ``imagenet-a``) in label order."""
    files = {**_SYNSET_FILES, "imagenet-r": "imagenet_r_synsets.txt", "imagenet-a": "imagenet_a_synsets.txt"}
    return tuple(line.strip() for line in _timm_info(files[source]).splitlines() if line.strip())


@functools.cache
def _table(filename: str) -> dict[str, str]:
    return dict(csv.reader(_timm_info(filename).splitlines(), delimiter="\t"))


def describe_wnid(wnid: str) -> str | None:
    """The definition of a WordNet id: timm's ImageNet metadata first, else the WordNet database."""
    definition = _table("imagenet_synset_to_definition.txt").get(wnid)
    if definition:
        return definition.strip()
    synset = lookup(wnid)
    return synset.gloss if synset else None


def lemmas_of_wnid(wnid: str) -> tuple[str, ...] | None:
    """Every lemma of a WordNet id, the usual name first (timm's metadata, else WordNet)."""
    lemma = _table("imagenet_synset_to_lemma.txt").get(wnid)
    if lemma:
        return tuple(dict.fromkeys(x.strip() for x in lemma.split(",") if x.strip()))
    synset = lookup(wnid)
    return synset.lemmas if synset else None


def name_of_wnid(wnid: str) -> str | None:
    """The first lemma of a WordNet id (timm's metadata, else WordNet)."""
    lemmas = lemmas_of_wnid(wnid)
    return lemmas[0] if lemmas else None


def hypernym_name(wnid: str) -> str | None:
    """The first lemma of the hypernym of a WordNet id ("wading bird" for the crane bird); None without WordNet."""
    parent = hypernym_of(wnid)
    return parent.lemmas[0] if parent else None


def imagenet_classes(source: str) -> list[ClassRecord]:
    """Every class of ``imagenet-1k`` or ``imagenet-22k`` in the standard label order."""
    out = []
    for i, wnid in enumerate(imagenet_wnids(source)):
        lemmas = lemmas_of_wnid(wnid)
        out.append(ClassRecord(index=i, name=lemmas[0] if lemmas else wnid, wnid=wnid, definition=describe_wnid(wnid),
                               lemmas=lemmas, hypernym=hypernym_name(wnid)))
    return out
