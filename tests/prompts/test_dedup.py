"""Exact and near-duplicate removal (greedy, order-preserving), with hand-made and real CLIP embeddings."""

from __future__ import annotations

import numpy as np

from synthdiv.stages.prompts.dedup import dedup_embeddings, dedup_text


def _unit(rows):
    a = np.asarray(rows, dtype=np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_dedup_text_keeps_first_and_respects_seen():
    items = ["On a table.", "on a TABLE", "in a pond", "the in pond", ""]
    assert dedup_text(items) == [0, 2]
    assert dedup_text(items, seen={"in pond"}) == [0]


def test_dedup_embeddings_threshold_and_order():
    emb = _unit([[1, 0], [0.99, 0.1], [0, 1], [0.7, 0.7]])
    assert dedup_embeddings(emb, 0.95) == [0, 2, 3]
    assert dedup_embeddings(emb, 0.5) == [0, 2]
    assert dedup_embeddings(emb, 1.0) == [0, 1, 2, 3]


def test_dedup_embeddings_against_kept_rows():
    emb = _unit([[1, 0], [0, 1]])
    assert dedup_embeddings(emb, 0.9, kept=_unit([[0.1, 1]])) == [0]


def test_dedup_with_the_embedded_clip_text_encoder():
    from synthdiv.config.models import CLIPSpec
    from synthdiv.models.clip import create_scorer

    scorer = create_scorer(CLIPSpec())
    texts = ["a goldfish in a bowl on a kitchen table", "A goldfish in a bowl  on a kitchen table",
             "an oil painting of a crane in a marsh"]
    emb = scorer.embed_texts(texts)
    # the random tiny encoder carries no meaning, but it reads the same tokens (case and spacing are normalised by
    # the tokenizer) to the same embedding, and a different text to another one
    other = float(emb[0] @ emb[2])
    assert other < 0.999
    assert dedup_embeddings(emb, (other + 1) / 2) == [0, 2]
