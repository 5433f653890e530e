"""Mutation score per module from ``mutmut results --all true`` (read on stdin), for `make mutation`.

Score = killed / (killed + survived), where a mutant that timed out counts as killed (the tests noticed it) and the
mutants listed in benchmarks/equivalent_mutants.txt (one name per line, ``#`` starts the reason) are left out:
they behave as the original for every valid input. Mutants no test reaches ("no tests") count as survived.
Mutants not checked in this run (``make mutation MUTANTS=...``) count as neither. Exits 1 when a listed equivalent
mutant is no longer among the results (the source changed: check the list) or was killed.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from pathlib import Path

EQUIVALENT = Path(__file__).resolve().parents[1] / "benchmarks" / "equivalent_mutants.txt"


def main() -> int:
    equivalent = {line.split("#", 1)[0].strip() for line in EQUIVALENT.read_text().splitlines()} - {""}
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    survivors: list[str] = []
    wrongly_listed: list[str] = []
    seen = set()
    for line in sys.stdin:
        name, sep, status = line.strip().rpartition(": ")
        if not sep or ".x_" not in name and "__mutmut_" not in name:
            continue
        module = name.split(".x_", 1)[0] if ".x_" in name else name.rsplit(".", 1)[0]
        seen.add(name)
        status = {"timeout": "killed", "no tests": "survived"}.get(status, status)
        if name in equivalent and status in ("survived", "killed"):
            if status == "killed":  # a test tells it from the original after all: not equivalent
                wrongly_listed.append(name)
            by_module[module]["equivalent"] += 1
            continue
        by_module[module][status] += 1
        if status == "survived":
            survivors.append(name)
    print(f"{'module':40} {'killed':>7} {'survived':>9} {'equivalent':>11} {'other':>6} {'score':>7}")
    for module, c in sorted(by_module.items()):
        other = sum(v for k, v in c.items() if k not in ("killed", "survived", "equivalent"))
        tested = c["killed"] + c["survived"]
        score = f"{100 * c['killed'] / tested:.1f}%" if tested else "-"
        print(f"{module:40} {c['killed']:>7} {c['survived']:>9} {c['equivalent']:>11} {other:>6} {score:>7}")
    for name in survivors:
        print(f"survived: {name}")
    stale = sorted(n for n in equivalent - seen if any(n.startswith(m + ".") for m in by_module))
    for name in stale:
        print(f"listed as equivalent but not produced (the source changed?): {name}")
    for name in wrongly_listed:
        print(f"listed as equivalent but killed (remove it from the list): {name}")
    return 1 if stale or wrongly_listed else 0


if __name__ == "__main__":
    sys.exit(main())
