"""An on-disk cache of captions keyed by (captioner id, image digest), so a rerun captions nothing again.

Each entry is one small JSON file ``<cache_dir>/<key[:2]>/<key>.json`` written atomically (as the LLM response
cache does), so parallel workers and interrupted runs are safe. The image is keyed by the sha256 of its bytes, not
its path: a renamed folder keeps its captions, an edited image gets a new one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from synthdiv.errors import InputError
from synthdiv.utils.hashing import canonical_hash, file_digest
from synthdiv.utils.io import atomic_write_json

logger = logging.getLogger(__name__)

__all__ = ["CaptionCache", "image_digest"]


def image_digest(path: Path | str) -> str:
    """sha256 hex of an image file's bytes.

    Raises:
        InputError: The file cannot be read (naming it).
    """
    try:
        return file_digest(Path(path))
    except OSError as exc:
        raise InputError(f"{path}: cannot read the image to caption: {exc.strerror or exc}") from None


class CaptionCache:
    """Captions of one captioner, by image digest."""

    def __init__(self, cache_dir: Path | str, captioner_id: str) -> None:
        self.root = Path(cache_dir)
        self.captioner_id = captioner_id

    def path_for(self, digest: str) -> Path:
        key = canonical_hash({"captioner": self.captioner_id, "image": digest})
        return self.root / key[:2] / f"{key}.json"

    def get(self, digest: str) -> str | None:
        path = self.path_for(digest)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            logger.warning("%s: unreadable caption cache entry; captioning again", path)
            return None
        caption = entry.get("caption") if isinstance(entry, dict) else None
        return caption if isinstance(caption, str) else None

    def put(self, digest: str, caption: str) -> None:
        path = self.path_for(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"captioner": self.captioner_id, "image": digest, "caption": caption})
