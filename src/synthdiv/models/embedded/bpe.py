"""The real CLIP byte-level BPE, read from the vocabulary file that ships inside open_clip.

The embedded CLIP, diffusion and captioning models tokenize with it: as a transformers ``CLIPTokenizer`` built in
memory, and as the ``vocab.json`` / ``merges.txt`` files that slow tokenizers read.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

from synthdiv.utils.io import atomic_write_json, atomic_write_text

__all__ = ["CLIP_CONTEXT", "CLIP_VOCAB_SIZE", "clip_bpe_vocab"]

# CLIP BPE: 256 byte tokens, their 256 end-of-word forms, 48894 merges and two specials = 49408 ids.
_N_MERGES = 49152 - 256 - 2
CLIP_VOCAB_SIZE = 49408
CLIP_CONTEXT = 77
_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"


def clip_bpe_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The real CLIP byte-level BPE (vocabulary and merges) read from open_clip's ``bpe_simple_vocab_16e6.txt.gz``.

    Returns:
        ``(vocab, merges)``: token -> id for all 49408 tokens (ids as in OpenAI CLIP, ``<|startoftext|>`` = 49406,
        ``<|endoftext|>`` = 49407), and the 48894 merges in rank order.
    """
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe(), "rt", encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 1 + _N_MERGES]]
    byte_tokens = list(bytes_to_unicode().values())
    tokens = byte_tokens + [t + "</w>" for t in byte_tokens] + ["".join(m) for m in merges] + [_BOS, _EOS]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    if len(vocab) != CLIP_VOCAB_SIZE:
        raise RuntimeError(f"open_clip's BPE file gave {len(vocab)} tokens, expected {CLIP_VOCAB_SIZE}")
    return vocab, merges  # type: ignore[return-value]


def _clip_tokenizer() -> Any:
    """A transformers ``CLIPTokenizer`` over the real CLIP BPE, 77 tokens long."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_bpe_vocab()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CLIP_CONTEXT)


def _write_bpe_files(folder: Path) -> None:
    """Write ``vocab.json`` and ``merges.txt`` next to ``tokenizer.json``, for slow (file-based) CLIP tokenizers."""
    vocab, merges = clip_bpe_vocab()
    atomic_write_json(folder / "vocab.json", vocab)
    atomic_write_text(folder / "merges.txt", "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
