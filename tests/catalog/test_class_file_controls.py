"""A control character anywhere in a class file's name is refused with the file and line, never collapsed into a
space (issue 24): a tab in a .txt name, a newline, tab or vertical tab in a CSV name, a line separator."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthdiv.config.classes import ClassesConfig
from synthdiv.errors import InputError
from synthdiv.stages.classes.stage import collect_classes


def _classes(path: Path) -> list:
    return collect_classes(ClassesConfig(source=path))


@pytest.mark.parametrize(
    ("text", "line", "shown", "code"),
    [
        ("goldfish\ngold\tfish\n", 2, "gold\\tfish", "0009"),
        ("goldfish\ngold\tfish n01443537\n", 2, "gold\\tfish", "0009"),
        ("goldfish\ngold\x0bfish\n", 2, "gold\\x0bfish", "000B"),  # str.splitlines() would split here
        ("goldfish\ngold\x1cfish\n", 2, "gold\\x1cfish", "001C"),
        ("goldfish\ngold\u2028fish\n", 2, "gold\\u2028fish", "2028"),
    ],
)
def test_a_control_character_in_a_text_class_name_is_refused(tmp_path: Path, text, line, shown, code):
    path = tmp_path / "c.txt"
    path.write_bytes(text.encode())
    with pytest.raises(InputError) as info:
        _classes(path)
    message = str(info.value)
    assert f"{path}: line {line}: class name '{shown}' contains the control character U+{code}" in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "line", "shown", "code"),
    [
        ('name\ngoldfish\n"gold\nfish"\n', 3, "gold\\nfish", "000A"),
        ('name\ngoldfish\n"gold\tfish"\n', 3, "gold\\tfish", "0009"),
        ('name,wnid\ngoldfish,\n"a\r\nb",n01443537\n', 3, "a\\nb", "000A"),  # read with universal newlines
    ],
)
def test_a_control_character_in_a_csv_class_name_is_refused(tmp_path: Path, text, line, shown, code):
    path = tmp_path / "c.csv"
    path.write_bytes(text.encode())
    with pytest.raises(InputError) as info:
        _classes(path)
    message = str(info.value)
    assert f"{path}: line {line}: class name '{shown}' contains the control character U+{code}" in message, message


def test_a_multi_line_csv_row_is_named_by_its_first_line(tmp_path: Path):
    path = tmp_path / "c.csv"
    path.write_text('name,definition\ngoldfish,"a small\nfish"\n"bad\x07",x\n')
    with pytest.raises(InputError, match=r"c.csv: line 4: class name 'bad\\x07'"):
        _classes(path)


def test_plain_whitespace_and_a_sense_after_the_name_still_work(tmp_path: Path):
    path = tmp_path / "c.txt"
    path.write_text("  golden  retriever  \ncrane n02012849\r\nbat\tn02139199\nfire truck\t\n")
    records = _classes(path)
    assert [(r.name, r.wnid) for r in records] == [
        ("golden retriever", None), ("crane", "n02012849"), ("bat", "n02139199"), ("fire truck", None)]
    csv = tmp_path / "c.csv"
    csv.write_text('name,definition\n  golden  retriever ,"a dog\nwith golden fur"\n')
    [record] = _classes(csv)
    assert record.name == "golden retriever" and record.definition == "a dog with golden fur"
