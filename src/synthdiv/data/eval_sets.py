"""Evaluation sets: the in-domain test folder, its shifted copies, and out-of-domain folders with class maps.

Folders are ImageFolders whose class folders are named by WordNet id (ImageNet-Sketch, -R, -A), by class index
(ImageNet-V2) or by class name. ImageNet-R and -A cover 200 classes: their logits are restricted to the run's classes
in timm's shipped synset lists (``timm/data/_info/imagenet_{r,a}_synsets.txt``), as their benchmarks prescribe.
Shifted copies (edges, inverted, noise) stand in for out-of-domain sets where none is at hand (the smoke run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthdiv.data.sources import SampleSet, list_images
from synthdiv.errors import InputError

if TYPE_CHECKING:
    from synthdiv.config.train import EvaluateConfig

logger = logging.getLogger(__name__)

__all__ = ["EvalSet", "check_sets", "folder_set", "test_samples", "subset_classes", "shift_transform",
           "build_eval_sets"]


@dataclass
class EvalSet:
    """A named set of labelled images, an optional logit mask and an optional image shift (PIL -> PIL)."""

    name: str
    samples: SampleSet
    class_mask: np.ndarray | None = None
    shift: Callable[[Any], Any] | None = None


def _folder_label(name: str, folders: str, classes: Sequence[dict[str, Any]]) -> int | None:
    if folders == "index":
        return int(name) if name.isdigit() and int(name) < len(classes) else None
    if folders == "wnid":
        return next((int(row["index"]) for row in classes if row.get("wnid") == name), None)
    # by name, as the classes stage names ImageFolder classes: '_' reads as a space; a wnid folder also matches
    key = _name_key(name)
    for row in classes:
        if row.get("wnid") == name or _name_key(str(row["name"])) == key:
            return int(row["index"])
    return None


def _name_key(name: str) -> str:
    return " ".join(name.replace("_", " ").casefold().split())


def _folders(root: Path, what: str) -> list[Path]:
    """The sub-folders of ``root``, sorted; a missing, non-folder or unlistable ``root`` is one line naming ``what``."""
    _check_folder(what, root)
    try:
        return sorted(p for p in root.iterdir() if p.is_dir())
    except OSError as exc:
        raise InputError(f"{what}: {root} cannot be listed ({exc.strerror or exc})") from None


def _check_folder(what: str, path: Path) -> None:
    """``synthdiv check``'s test of an input folder, with its words."""
    if not path.exists():
        raise InputError(f"{what}: {path} does not exist")
    if not path.is_dir():
        raise InputError(f"{what}: {path} is not a directory")


def check_sets(ecfg: EvaluateConfig) -> None:
    """The evaluate section's sets, checked before the stage reads or writes anything, with the one-line errors
    ``synthdiv check`` and ``run`` give: every folder exists and is a directory, shifts have a test set, and there
    is at least one set.

    Raises:
        InputError: The first problem, naming its key.
    """
    wanted = [("evaluate.test_root", ecfg.test_root)]
    wanted += [(f"evaluate.ood[{i}].root ({o.name})", o.root) for i, o in enumerate(ecfg.ood)]
    for where, path in wanted:
        if path is not None:
            _check_folder(where, Path(path))
    if ecfg.test_root is None and ecfg.shifts:
        raise InputError("evaluate.shifts: shifted copies need evaluate.test_root")
    if ecfg.test_root is None and not ecfg.ood:
        raise InputError("evaluate: no evaluation sets; set evaluate.test_root and/or evaluate.ood")


def folder_set(root: Path, folders: str, classes: Sequence[dict[str, Any]], what: str) -> SampleSet:
    """Labelled images of an ImageFolder whose class folders are named per ``folders`` (wnid, index or name)."""
    root = Path(root)
    rows, skipped = [], []
    for folder in _folders(root, what):
        label = _folder_label(folder.name, folders, classes)
        if label is None:
            skipped.append(folder.name)
            continue
        rows += [(str(p), -1, -1, label, str(p)) for p in list_images(folder)]
    if skipped:
        logger.warning("%s: %d class folders match no class of the run by %s (e.g. %s); skipped",
                       what, len(skipped), folders, skipped[0])
    if not rows:
        raise InputError(f"{what}: {root} has no images in class folders named by {folders} of the run's classes")
    return SampleSet.from_rows(rows)


def subset_classes(subset: str, classes: Sequence[dict[str, Any]]) -> np.ndarray:
    """Boolean mask of the run's classes in timm's ImageNet-R / -A 200-class synset list."""
    from importlib import resources

    text = resources.files("timm").joinpath("data/_info", f"{subset.replace('-', '_')}_synsets.txt").read_text()
    wnids = {line.strip() for line in text.splitlines() if line.strip()}
    mask = np.array([row.get("wnid") in wnids for row in classes])
    if not mask.any():
        raise InputError(f"evaluate.ood: subset {subset}: none of the run's classes is in its synset list")
    return mask


def shift_transform(kind: str, seed: int = 0) -> Callable[[Any], Any]:
    """A PIL -> PIL shift: ``edges`` (edge map), ``inverted`` (negative), ``noise`` (Gaussian, sigma 0.2)."""
    from PIL import Image, ImageFilter, ImageOps

    if kind == "edges":
        return lambda img: ImageOps.autocontrast(img.convert("L").filter(ImageFilter.FIND_EDGES)).convert("RGB")
    if kind == "inverted":
        return lambda img: ImageOps.invert(img.convert("RGB"))
    if kind == "noise":

        def noisy(img: Any) -> Any:
            arr = np.asarray(img.convert("RGB"), dtype=np.float32)
            rng = np.random.default_rng([seed, int(arr.sum()) % (1 << 31)])  # the same noise for the same image
            return Image.fromarray(np.clip(arr + rng.normal(0, 0.2 * 255, arr.shape), 0, 255).astype(np.uint8))

        return noisy
    raise ValueError(f"unknown shift {kind!r}")


def _limit(samples: SampleSet, max_images: int | None, seed: int) -> SampleSet:
    if max_images is None or len(samples) <= max_images:
        return samples
    keep = np.sort(np.random.default_rng(seed).choice(len(samples), size=max_images, replace=False))
    return samples.take(keep)


def build_eval_sets(ecfg: EvaluateConfig, classes: Sequence[dict[str, Any]], seed: int) -> list[EvalSet]:
    """Every set of the ``evaluate`` section: ``test``, ``test-<shift>`` and each OOD set."""
    check_sets(ecfg)
    sets: list[EvalSet] = []
    if ecfg.test_root is not None:
        test = _limit(test_samples(ecfg, classes), ecfg.max_images, seed)
        sets.append(EvalSet("test", test))
        sets += [EvalSet(f"test-{kind}", test, shift=shift_transform(kind, seed)) for kind in ecfg.shifts]
    for ood in ecfg.ood:
        samples = _limit(folder_set(ood.root, ood.folders, classes, f"evaluate.ood[{ood.name}]"),
                         ood.max_images or ecfg.max_images, seed)
        mask = subset_classes(ood.subset, classes) if ood.subset else None
        sets.append(EvalSet(ood.name, samples, class_mask=mask))
    return sets


def test_samples(ecfg: EvaluateConfig, classes: Sequence[dict[str, Any]]) -> SampleSet:
    """Every image of ``evaluate.test_root``, its class folders named by wnid or by class name."""
    if ecfg.test_root is None:
        raise InputError("evaluate.test_root: not set")
    root = Path(ecfg.test_root)
    wnids = {row.get("wnid") for row in classes if row.get("wnid")}
    by = "wnid" if any(p.name in wnids for p in _folders(root, "evaluate.test_root")) else "name"
    return folder_set(root, by, classes, "evaluate.test_root")
