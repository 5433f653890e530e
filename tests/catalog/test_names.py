"""Class names are folder names: no path may leave classes.real_root, and no control character gets through."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from synthdiv.config.classes import ClassesConfig
from synthdiv.errors import InputError
from synthdiv.stages.classes.imagefolder import find_class_dir
from synthdiv.stages.classes.records import ClassRecord
from synthdiv.stages.classes.stage import collect_classes
from synthdiv.utils.names import is_within, printable, safe_join


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("../secret", "class name '../secret' contains '/'"),
        ("/etc", "class name '/etc' contains '/'"),
        ("..", "class name '..' is '..'"),
        ("a\\b", "class name 'a\\b' contains '\\\\'"),
        ("nul\0byte", "class name 'nul\\x00byte' contains the control character U+0000"),
        ("bell\x07", "class name 'bell\\x07' contains the control character U+0007"),
        ("rtl\u202eevil", "class name 'rtl\\u202eevil' contains the control character U+202E"),
        ("x" * 10_000, "class name has 10000 characters; at most 200"),
    ],
)
@pytest.mark.parametrize("kind", ["txt", "csv"])
def test_unusable_class_names_are_refused_with_their_line(tmp_path: Path, name: str, fragment: str, kind: str):
    path = tmp_path / f"classes.{kind}"
    header = "name\n" if kind == "csv" else ""
    quoted = f'"{name}"' if kind == "csv" else name
    path.write_text(f"{header}goldfish\n{quoted}\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        collect_classes(ClassesConfig(source=path))
    message = str(err.value)
    line = 3 if kind == "csv" else 2
    if "characters; at most" in fragment:
        fragment = fragment.replace("class name has", "class name '" + "x" * 60)
        assert f"line {line}: class name '{'x' * 60}... (9940 more characters)' has 10000 characters" in message
        assert len(message) < 300
    else:
        assert f"{path}: line {line}: {fragment}" in message
    assert "\0" not in message and "\x07" not in message


def test_csv_definitions_refuse_control_characters(tmp_path: Path):
    path = tmp_path / "c.csv"
    path.write_text('name,definition\ngoldfish,"a fish\x1b[31m"\n')
    with pytest.raises(InputError, match=r"c.csv: line 2: definition 'a fish\\x1b\[31m' contains the control"):
        collect_classes(ClassesConfig(source=path))


def _images(folder: Path, n: int = 2) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (4, 4)).save(folder / f"{i}.png")


def test_real_images_never_come_from_outside_real_root(tmp_path: Path):
    root = tmp_path / "real"
    _images(root / "goldfish")
    _images(tmp_path / "secret")  # a sibling of real_root, and an absolute path
    for name in ("../secret", str(tmp_path / "secret")):
        assert find_class_dir(root, ClassRecord(index=0, name=name)) is None
    assert find_class_dir(root, ClassRecord(index=0, name="goldfish")) == root / "goldfish"


def test_image_folder_with_a_control_character_in_a_class_folder(tmp_path: Path):
    _images(tmp_path / "data" / "ok")
    _images(tmp_path / "data" / "bad\x1bname")
    with pytest.raises(InputError, match=r"class folder 'bad\\x1bname' contains the control character U\+001B"):
        collect_classes(ClassesConfig(source=tmp_path / "data"))


def test_safe_join_stays_inside_its_root(tmp_path: Path):
    assert safe_join(tmp_path, "main", "test.json", what="evaluate set") == tmp_path / "main" / "test.json"
    for bad in ("../x", "/abs", "..", "a/b", "x\0"):
        with pytest.raises(InputError, match="evaluate set: name"):
            safe_join(tmp_path, "main", f"{bad}", what="evaluate set")
    assert is_within(tmp_path / "a" / ".." / "b", tmp_path) and not is_within(tmp_path / ".." / "b", tmp_path)


def test_printable_escapes_and_bounds():
    assert printable("a\x1b[2Jb\nc") == "a\\x1b[2Jb\\nc"
    assert printable("a\nb\tc", keep="\n\t") == "a\nb\tc"
    assert printable("x" * 50, limit=10) == "x" * 10 + "... (40 more characters)"
    assert printable("plain text, ünïcode") == "plain text, ünïcode"


def test_train_refuses_a_real_dir_outside_the_real_image_roots(tmp_path: Path):
    from synthdiv.data.real import real_samples

    _images(tmp_path / "real" / "goldfish")
    _images(tmp_path / "secret")
    rows = [{"index": 0, "name": "goldfish", "real_dir": str(tmp_path / "real" / "goldfish")},
            {"index": 1, "name": "crane", "real_dir": str(tmp_path / "real" / ".." / "secret")}]
    assert len(real_samples(rows[:1], roots=[tmp_path / "real"])) == 2
    with pytest.raises(InputError, match=r"class 1: real_dir .*secret is outside .*real"):
        real_samples(rows, roots=[tmp_path / "real"])
