"""Benchmark (CPU): which sense a plain class name takes, before and after the list decides it (issue 21).

On the plain-name lists of ``benchmarks/data/sense_lists.json`` (animals, tools, kitchen, sports, music, clothing,
food, vehicles; each polysemous name annotated with the senses that fit its list) and on the quickstart's
Fashion-MNIST names, with no LLM and no images:

* ``before``: the sense the grounded fallback took until now: WordNet's first sense a photo can show;
* ``after``: :func:`synthdiv.stages.disambiguate.senses.list_senses` (Lin relatedness to the rest of the list).

Printed per list: names scored, right before, right after (undecided counts as not right), undecided; the share
over all lists; the time of ``after`` (WordNet's hierarchy read once, then every list) against ``before``, both in
this run.

    .venv/bin/python benchmarks/sense_choice.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["main", "bench"]

LISTS = Path(__file__).resolve().parent / "data" / "sense_lists.json"
# The quickstart's classes (data/fashion-mnist-smoke/train) and the senses that fit a list of clothes and accessories
# (a bag: any of the three kinds of physical bag, not the quantity or the "old bag").
QUICKSTART = {"ankle boot": [], "bag": ["n02773037", "n02773838", "n02774152"], "coat": ["n03057021"],
              "dress": ["n03236735", "n02756098", "n02728440"], "pullover": [], "sandal": [], "shirt": [],
              "sneaker": ["n03472535"], "t-shirt top": [], "trouser": ["n04489008", "n04488530"]}


def _before(name: str) -> str | None:
    from synthdiv.lexicon.wordnet import noun_senses
    from synthdiv.stages.disambiguate.ambiguity import sense_of

    senses = [s for s in (sense_of(w) for w in noun_senses(name)) if s is not None]
    visual = [s for s in senses if s.visual] or senses
    return visual[0].wnid if visual else None


def bench() -> dict[str, Any]:
    """Score both choices on every list; returns per-list counts and the totals."""
    from synthdiv.lexicon.wordnet import noun_senses, wordnet_dir
    from synthdiv.stages.disambiguate.senses import list_senses

    if wordnet_dir() is None:
        raise SystemExit("WordNet is not installed (apt-get install wordnet-base)")
    lists = {k: v for k, v in json.loads(LISTS.read_text()).items() if not k.startswith("_")}
    lists["quickstart"] = QUICKSTART
    out: dict[str, Any] = {"lists": {}}
    t_before = t_after = 0.0
    for domain, names in lists.items():
        rows = [{"name": n} for n in names]
        start = time.perf_counter()
        before = {n: _before(n) for n in names}
        t_before += time.perf_counter() - start
        start = time.perf_counter()
        after = dict(zip(names, list_senses(rows, [len(noun_senses(n)) >= 2 for n in names]), strict=True))
        t_after += time.perf_counter() - start
        scored = [n for n, fits in names.items() if fits]
        out["lists"][domain] = {
            "scored": len(scored),
            "right_before": sum(before[n] in names[n] for n in scored),
            "right_after": sum(after[n] is not None and after[n].wnid in names[n] for n in scored),
            "undecided": [n for n in scored if after[n] is not None and not after[n].decided],
            "wrong_after": [n for n in scored if after[n] is not None and after[n].decided
                            and after[n].wnid not in names[n]],
        }
    rows = out["lists"].values()
    out["scored"] = sum(r["scored"] for r in rows)
    out["right_before"] = sum(r["right_before"] for r in rows)
    out["right_after"] = sum(r["right_after"] for r in rows)
    out["seconds_before"], out["seconds_after"] = round(t_before, 3), round(t_after, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = bench()
    print(f"{'list':<12} {'scored':>6} {'before':>6} {'after':>6}  undecided / wrong after")
    for domain, r in result["lists"].items():
        print(f"{domain:<12} {r['scored']:>6} {r['right_before']:>6} {r['right_after']:>6}  "
              f"{', '.join(r['undecided']) or '-'} / {', '.join(r['wrong_after']) or '-'}")
    n = result["scored"]
    print(f"{'all':<12} {n:>6} {result['right_before']:>6} {result['right_after']:>6}  "
          f"share before {result['right_before'] / n:.1%}, after {result['right_after'] / n:.1%}")
    print(f"time: before {result['seconds_before']:.3f} s, after {result['seconds_after']:.3f} s "
          "(after includes reading WordNet's hierarchy once)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
