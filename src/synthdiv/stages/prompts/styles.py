"""Stylized diversification (SD): a vocabulary of visual styles and renditions, and ``styles.json``.

The paper's second diversification: the same class as a pencil sketch, an origami figure, an embroidery, a video
game render... for robustness out of the photo domain (ImageNet-Sketch, ImageNet-R). The vocabulary is shared by
all classes (optionally with a few per-class styles) and kept as its own artifact, ``styles.json``, so another
run can reuse it (``prompts.styles_file``) without asking the LLM again.

A style must read as a rendition, since it fills "a {style} of a {description}": it has a head word of
:data:`RENDITIONS` ("oil painting", "pencil sketch", "origami", "3D render") and is no debris
(:mod:`synthdiv.lexicon.debris`). When the LLM cannot give ``prompts.styles`` such styles, :data:`BUILTIN_STYLES`
fills the gap: a seeded, deterministic choice, recorded as built-in (``builtin`` in ``styles.json``; template id
:data:`BUILTIN_STYLES_ID` and no LLM id in ``prompts.parquet``).

``styles.json``: ``{"version": 1, "styles": [...], "llm_id", "template_id", "requested", "per_class":
{class name: {"styles": [...], "llm_id", "template_id"}}, "builtin": [...]}``; ``builtin`` lists the styles of
``styles`` that came from :data:`BUILTIN_STYLES` (absent or empty: all came from the LLM or a reused file).
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from synthdiv.config.prompts import PromptsConfig
from synthdiv.errors import InputError
from synthdiv.lexicon.debris import debris_reason, words_of
from synthdiv.stages.prompts.gather import Family, Gathered, Processed, batch_seed, gather_many, gather_settings
from synthdiv.stages.prompts.text import count_tokens, is_chatter, looks_like_text, strip_article, text_key

logger = logging.getLogger(__name__)

__all__ = [
    "STYLES_TEMPLATE",
    "CLASS_STYLES_TEMPLATE",
    "MAX_STYLE_WORDS",
    "MAX_STYLE_TOKENS",
    "RENDITIONS",
    "BUILTIN_STYLES",
    "BUILTIN_STYLES_ID",
    "rendition_reason",
    "builtin_styles",
    "style_processor",
    "collect_styles",
    "collect_class_styles_many",
    "load_styles",
    "styles_document",
]

STYLES_TEMPLATE = "styles.v2"
CLASS_STYLES_TEMPLATE = "styles.class.v1"
MAX_STYLE_WORDS = 6
MAX_STYLE_TOKENS = 16
STYLES_FORMAT = 1
BUILTIN_STYLES_ID = "styles.builtin.v1"  # bump with any change to BUILTIN_STYLES

def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Head words of a rendition: a style names at least one (singular or plural), or one of the two-word heads written
# with "_" (a bare "art" or "still" is no rendition: "translation art"). Grouped by kind of rendition.
RENDITIONS = _word_set("""
painting paint watercolor watercolour acrylic gouache fresco mural tempera canvas
drawing sketch doodle illustration charcoal pencil pastel crayon chalk ink lineart
pixel_art line_art pop_art clip_art street_art folk_art fan_art concept_art digital_art glass_art ascii_art
photograph photo photography snapshot polaroid daguerreotype x-ray screenshot still_life film_still
render rendering cgi 3d model wireframe voxel hologram
sculpture statue statuette bust figurine carving relief bronze marble clay ceramic porcelain terracotta pottery
origami papercraft cutout collage quilt embroidery needlepoint stitch cross-stitch tapestry weaving knitting
crochet plush plushie toy doll puppet lego diorama miniature claymation glass stained-glass beadwork
engraving etching woodcut linocut lithograph print screenprint blueprint poster postcard stamp stencil graffiti
tattoo cartoon comic manga anime animation caricature emoji icon sticker sprite silhouette
mosaic calligraphy
""")

# The built-in style vocabulary: renditions from ImageNet-R's and ImageNet-Sketch's kinds (art, cartoons, deviantart,
# graffiti, embroidery, graphics, origami, paintings, patterns, plastic objects, plush objects, sculptures,
# sketches, tattoos, toys, video games) and common media. Each passes style_processor (a test holds it).
BUILTIN_STYLES = (
    "pencil sketch", "oil painting", "watercolor painting", "charcoal drawing", "ink drawing", "pastel drawing",
    "crayon drawing", "chalk drawing", "3D render", "video game render", "low poly 3D model", "clay sculpture",
    "marble statue", "bronze sculpture", "wood carving", "ceramic figurine", "origami", "paper collage",
    "embroidery", "cross-stitch", "knitted toy", "plush toy", "plastic toy", "stained glass", "mosaic", "graffiti",
    "tattoo", "comic book illustration", "cartoon", "anime drawing", "pixel art", "vector illustration",
    "woodcut print", "linocut print", "etching", "screen print", "black and white photograph",
    "vintage photograph", "blueprint", "sticker", "lego model", "papercraft model",
)

_QUOTED_HEAD = re.compile(r'^\s*["\u201c]([^"\u201d]{2,60})["\u201d]')
_GLOSS = re.compile(r"\s[-\u2013\u2014:]\s|\s\(|:\s")
_EDGE = re.compile(r"^[\s\"'`*_\-:;,.]+|[\s\"'`*_\-:;,.!]+$")


def rendition_reason(style: str) -> str | None:
    """Why ``style`` does not read as a rendition (no head word of :data:`RENDITIONS`), or None."""
    words = [part for word in words_of(style) for part in dict.fromkeys([word, *word.split("-")])]
    heads = [*words, *(f"{a}_{b}" for a, b in zip(words, words[1:], strict=False))]
    if any(h in RENDITIONS or h.removesuffix("s") in RENDITIONS or h.removesuffix("es") in RENDITIONS for h in heads):
        return None
    return 'not a rendition (name a medium: "oil painting", "pencil sketch", "origami", "3D render")'


def builtin_styles(n: int, seed: int, exclude: Sequence[str] = ()) -> list[str]:
    """``n`` styles of :data:`BUILTIN_STYLES` (fewer if it runs out), none equal to one of ``exclude``: a seeded,
    deterministic choice."""
    taken = {text_key(s) for s in exclude}
    pool = [s for s in BUILTIN_STYLES if text_key(s) not in taken]
    random.Random(batch_seed(BUILTIN_STYLES_ID, seed)).shuffle(pool)
    return pool[: max(n, 0)]


def style_processor() -> Callable[[str], Processed]:
    """``process(item) -> (text, fix, reason)`` for style names: a short noun phrase without a leading article (a
    gloss after a dash, colon or parenthesis is cut off) that is no debris and reads as a rendition."""

    def process(item: str) -> Processed:
        quoted = _QUOTED_HEAD.match(item)  # '"stained glass" - coloured glass in lead' -> 'stained glass'
        text = quoted.group(1) if quoted else _GLOSS.split(item, maxsplit=1)[0]
        text = strip_article(_EDGE.sub("", " ".join(text.split())))
        if not text:
            return None, None, "empty"
        if is_chatter(text):
            return None, None, "not an item (model chatter)"
        if not looks_like_text(text, min_words=1):
            return None, None, "not words"
        if len(text.split()) > MAX_STYLE_WORDS or count_tokens(text) > MAX_STYLE_TOKENS:
            return None, None, f"longer than {MAX_STYLE_WORDS} words"
        reason = debris_reason(text) or rendition_reason(text)
        if reason:
            return None, None, reason
        return (text.lower() if text.istitle() else text[0].lower() + text[1:]), None, None

    return process


def collect_styles(llm: Any, wanted: int, cfg: PromptsConfig, run_seed: int, scorer: Any | None = None) -> Gathered:
    """The shared style vocabulary."""
    family = Family(STYLES_TEMPLATE, {}, wanted, style_processor(), ("styles", run_seed, "all"))
    return gather_many(llm, [family], **gather_settings(cfg, scorer), tokens_per_item=10)[0]


def collect_class_styles_many(
    llm: Any, wanted: int, classes: Sequence[tuple[str, int]], cfg: PromptsConfig, run_seed: int,
    scorer: Any | None = None,
) -> list[Gathered]:
    """The own styles of each ``(description, class index)``, the classes' requests sent together."""
    families = [
        Family(CLASS_STYLES_TEMPLATE, {"description": description}, wanted, style_processor(),
               ("styles", run_seed, class_index))
        for description, class_index in classes
    ]
    return gather_many(llm, families, **gather_settings(cfg, scorer), tokens_per_item=10)


def _string_list(value: Any, path: Path, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(s, str) and s.strip() for s in value):
        raise InputError(f"{path}: {field}: expected a list of non-empty strings")
    return [s.strip() for s in value]


def load_styles(path: Path) -> dict[str, Any]:
    """Read and check a ``styles.json`` written by an earlier run (see the module docstring for the format)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: styles file not found (prompts.styles_file)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a JSON styles file ({exc})") from None
    if not isinstance(doc, dict) or "styles" not in doc:
        raise InputError(f"{path}: expected an object with a 'styles' list")
    doc["styles"] = _string_list(doc["styles"], path, "styles")
    per_class = doc.get("per_class") or {}
    if not isinstance(per_class, dict):
        raise InputError(f"{path}: per_class: expected an object of class name -> styles")
    for name, entry in per_class.items():
        if not isinstance(entry, dict):
            raise InputError(f"{path}: per_class.{name}: expected an object with a 'styles' list")
        entry["styles"] = _string_list(entry.get("styles"), path, f"per_class.{name}.styles")
    doc["per_class"] = per_class
    doc["builtin"] = _string_list(doc.get("builtin") or [], path, "builtin")
    return doc


def styles_document(
    styles: list[str], llm_id: str | None, template_id: str | None, requested: int, per_class: dict[str, Any],
    builtin: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``styles.json`` object; ``builtin``: the styles of ``styles`` taken from :data:`BUILTIN_STYLES`."""
    return {
        "version": STYLES_FORMAT,
        "styles": list(styles),
        "llm_id": llm_id,
        "template_id": template_id,
        "requested": requested,
        "per_class": per_class,
        "builtin": [s for s in styles if s in set(builtin)],
    }
