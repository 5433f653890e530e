"""Class lists from files: ``.txt`` (one name per line, ``#`` comments) or ``.csv`` with a header.

A ``.txt`` line may name the class's WordNet sense after the name: ``crane n02012849`` (the bird, not the machine).
CSV columns: ``name`` (required), ``wnid`` and ``definition`` (optional). A missing definition is looked up from the
wnid. Problems are reported with the file and line number (a CSV row's first line). A class name names a folder of
real images (``classes.real_root/<name>``), so it must be one plain folder name
(:func:`synthdiv.utils.names.name_problem`: no ``/``, no ``..``, no NUL or control character, at most 200 characters).

Spaces and tabs around a name (and between a ``.txt`` name and its wnid) are dropped and runs of spaces inside it
become one; any other character is kept as written, so a tab, a newline (in a quoted CSV field) or another control
character inside a name is refused, never collapsed into a space. A CSV definition is free text: its line breaks
and tabs become spaces.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from pathlib import Path

from synthdiv.errors import InputError
from synthdiv.lexicon.wordnet import WNID_RE
from synthdiv.stages.classes.imagenet import describe_wnid
from synthdiv.stages.classes.records import ClassRecord
from synthdiv.utils.names import name_problem, printable, text_problem

logger = logging.getLogger(__name__)

__all__ = ["read_class_file", "folder_senses"]

_CSV_COLUMNS = ("name", "wnid", "definition")
MAX_DEFINITION_CHARS = 2000
_TXT_LINE = re.compile(r"(?P<name>.*?)(?:[ \t]+(?P<wnid>n\d{8}))?")


def _checked_name(path: Path, number: int, name: str) -> str:
    name = re.sub(" {2,}", " ", name.strip(" \t"))  # spaces only: any other character is checked as it is
    if not name:
        raise InputError(f"{path}: line {number}: empty class name")
    problem = name_problem(name)
    if problem is not None:
        raise InputError(f"{path}: line {number}: class name '{printable(name, limit=60)}' {problem}")
    return name


def _checked_definition(path: Path, number: int, definition: str | None) -> str | None:
    if definition is None:
        return None
    problem = text_problem(definition, MAX_DEFINITION_CHARS)
    if problem is not None:
        raise InputError(f"{path}: line {number}: definition '{printable(definition, limit=60)}' {problem}")
    return definition


def read_class_file(path: Path) -> list[ClassRecord]:
    """Parse a ``.txt`` or ``.csv`` class file (see the module docstring)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path, text)
    if suffix in (".txt", ".lst", ""):
        return _read_txt(path, text)
    raise InputError(f"{path}: unknown class file type {suffix!r}; expected .txt (one name per line) or .csv")


def _read_txt(path: Path, text: str) -> list[ClassRecord]:
    lines = text.split("\n")  # read with universal newlines; str.splitlines() would also split at \x0b, \x1c, ...
    while lines and not lines[-1].strip():
        lines.pop()
    records = []
    for number, raw in enumerate(lines, start=1):
        if raw.lstrip().startswith("#"):
            continue
        match = _TXT_LINE.fullmatch(raw.strip(" \t"))  # matches every line; the wnid group only after a name
        wnid = match["wnid"] if match else None
        name = _checked_name(path, number, match["name"] if match and wnid else raw)
        definition = describe_wnid(wnid) if wnid else None
        if wnid is not None and definition is None:
            logger.warning("%s: line %d: no definition known for %s", path, number, wnid)
        records.append(ClassRecord(index=len(records), name=name, wnid=wnid, definition=definition, line=number))
    if not records:
        raise InputError(f"{path}: no class names (expected one name per line)")
    return records


def _read_csv(path: Path, text: str) -> list[ClassRecord]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "name" not in header:
        raise InputError(f"{path}: line 1: header must have a 'name' column (optional: wnid, definition)")
    unknown = [h for h in header if h not in _CSV_COLUMNS]
    if unknown:
        raise InputError(f"{path}: line 1: unknown column {unknown[0]!r}; expected name, wnid, definition")
    reader.fieldnames = header
    records = []
    for row in reader:
        if None in row:
            raise InputError(f"{path}: line {reader.line_num}: more fields than the header's {len(header)}")
        number = reader.line_num - sum(v.count("\n") for v in row.values() if v)  # the row's first line
        name = _checked_name(path, number, row.get("name") or "")
        wnid = (row.get("wnid") or "").strip() or None
        if wnid is not None and not WNID_RE.match(wnid):
            raise InputError(f"{path}: line {number}: wnid {wnid!r} is not a WordNet noun id like n02012849")
        definition = _checked_definition(path, number, re.sub(r"[ \t\n]+", " ", row.get("definition") or "").strip()
                                         or None)
        if definition is None and wnid is not None:
            definition = describe_wnid(wnid)
            if definition is None:
                logger.warning("%s: line %d: no definition known for %s", path, number, wnid)
        records.append(ClassRecord(index=len(records), name=name, wnid=wnid, definition=definition, line=number))
    if not records:
        raise InputError(f"{path}: no classes after the header")
    return records


def folder_senses(root: Path) -> dict[str, ClassRecord]:
    """The senses an ImageFolder's ``classes.csv`` names for its class folders (``name`` is the folder name, with
    ``wnid`` and/or ``definition``), by folder name; empty when the folder has no such file."""
    path = root / "classes.csv"
    if not path.is_file():
        return {}
    return {r.name: r for r in _read_csv(path, path.read_text(encoding="utf-8-sig"))}
