"""gather_many: many request families side by side, their pending requests sent together, each family asking
exactly what gather alone asks (so their cached answers are shared)."""

from __future__ import annotations

import json
import re

from synthdiv.stages.prompts.contexts import collect_contexts, collect_contexts_many


class _SeedEcho:
    """Answers a request with a list derived from its seed and class (a scripted backend: no model)."""

    model_id = "echo:seed"
    supports_json_schema = False

    def __init__(self) -> None:
        self.requests: list[tuple[str, int, int]] = []
        self.batches: list[int] = []

    def complete(self, messages, n=1, temperature=0.7, seed=0, max_tokens=256, json_schema=None):
        text = " ".join(m["content"] for m in messages)
        desc = re.search(r"goldfish|crane|heron", text).group(0)
        self.requests.append((desc, seed, max_tokens))
        # seed % 3 == 0 gives a short list: a corrective retry follows
        items = [f"a {desc} in place {seed % 1000}-{j}" for j in range(1 if seed % 3 == 0 else 3)]
        return [json.dumps(items)] * n

    def complete_many(self, requests):
        self.batches.append(len(requests))
        return [r.send(self) for r in requests]


def test_each_family_asks_what_gather_alone_asks(make_config):
    cfg = make_config(prompts={"contexts_per_class": 7, "batch_size": 3, "max_retries": 1, "clip_dedup": False})
    p = cfg.prompts
    classes = [("goldfish", 0), ("crane", 1), ("heron", 2)]
    alone = _SeedEcho()
    one_by_one = [collect_contexts(alone, d, i, p, cfg.seed) for d, i in classes]
    together = _SeedEcho()
    many = collect_contexts_many(together, classes, p, cfg.seed)
    assert [g.items for g in many] == [g.items for g in one_by_one]
    assert [g.requests for g in many] == [g.requests for g in one_by_one]
    for desc, _ in classes:
        assert [r for r in together.requests if r[0] == desc] == [r for r in alone.requests if r[0] == desc]
    assert together.batches[0] == 3 and len(together.batches) < len(alone.requests)  # rounds, not one by one
    assert all(len(g.items) == 7 for g in many)
