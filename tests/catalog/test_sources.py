"""The classes stage over each source: ImageNet ids, .txt, .csv, ImageFolder, and its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthdiv.config.classes import ClassesConfig
from synthdiv.errors import InputError
from synthdiv.lexicon.wordnet import lookup, wordnet_dir
from synthdiv.stages.classes.stage import collect_classes


def classes(**kw):
    return collect_classes(ClassesConfig(**kw))


def test_imagenet_1k_has_both_cranes_told_apart():
    records = classes(source="imagenet-1k")
    assert len(records) == 1000
    assert records[0].wnid == "n01440764" and records[0].name == "tench"
    cranes = [r for r in records if r.name == "crane"]
    assert {r.wnid for r in cranes} == {"n02012849", "n03126707"}
    bird, machine = sorted(cranes, key=lambda r: r.wnid)
    assert "bird" in bird.definition and "lifts" in machine.definition
    assert [r.index for r in records] == list(range(1000))


def test_imagenet_22k_and_subset():
    assert len(classes(source="imagenet-22k")) == 21841
    picked = classes(source="imagenet-1k", subset=["n03126707", "goldfish"])
    assert [(r.index, r.name) for r in picked] == [(0, "crane"), (1, "goldfish")]
    assert len(classes(source="imagenet-1k", max_classes=7)) == 7
    with pytest.raises(InputError, match="classes.subset: unknown class 'unicorn'"):
        classes(source="imagenet-1k", subset=["unicorn"])


def test_text_file(tmp_path: Path):
    path = tmp_path / "c.txt"
    path.write_text("# my classes\ngolden  retriever\nfire truck\n\n")
    records = classes(source=path)
    assert [r.name for r in records] == ["golden retriever", "fire truck"]
    assert records[1].definition is None and records[1].real_images == 0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("cat\n\ndog\n", "line 2: empty class name"),
        ("cat\ndog\nCat\n", "line 1 and line 3: duplicate class name 'Cat'"),
        ("", "no class names"),
    ],
)
def test_text_file_refusals(tmp_path: Path, text: str, fragment: str):
    path = tmp_path / "c.txt"
    path.write_text(text)
    with pytest.raises(InputError, match=fragment) as info:
        classes(source=path)
    assert str(path) in str(info.value)


def test_csv_looks_up_definitions_and_allows_told_apart_duplicates(tmp_path: Path):
    path = tmp_path / "c.csv"
    path.write_text("name,wnid,definition\ncrane,n02012849,\ncrane,n03126707,\ndrake,,male duck\n")
    records = classes(source=path)
    assert [r.name for r in records] == ["crane", "crane", "drake"]
    assert "wading bird" in records[0].definition
    assert "heavy objects" in records[1].definition
    assert records[2].definition == "male duck" and records[2].wnid is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("label\ncat\n", "line 1: header must have a 'name' column"),
        ("name,colour\ncat,red\n", "line 1: unknown column 'colour'"),
        ("name,wnid\ncat,12345\n", "line 2: wnid '12345' is not a WordNet noun id"),
        ("name,definition\ncat,a pet\n,\n", "line 3: empty class name"),
        ("name,definition\ncrane,\ncrane,\n", "line 2 and line 3: duplicate class name 'crane'"),
        ("name,wnid\nbird,n02012849\ncrane,n02012849\n", "duplicate wnid n02012849"),
        ("name\ncat,extra\n", "line 2: more fields than the header"),
    ],
)
def test_csv_refusals(tmp_path: Path, text: str, fragment: str):
    path = tmp_path / "c.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=fragment):
        classes(source=path)


def test_unknown_file_type_and_missing_source(tmp_path: Path):
    path = tmp_path / "c.json"
    path.write_text("[]")
    with pytest.raises(InputError, match="unknown class file type '.json'"):
        classes(source=path)
    with pytest.raises(InputError, match="does not exist"):
        classes(source=tmp_path / "nope.txt")


def _image_folder(root: Path, counts: dict[str, int]) -> Path:
    from PIL import Image

    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (4, 4)).save(root / name / f"{i}.png")
        (root / name / "notes.txt").write_text("not an image")
    return root


def test_image_folder_names_counts_and_wnid_folders(tmp_path: Path):
    root = _image_folder(tmp_path / "train", {"ankle_boot": 3, "n02012849": 2, "bag": 0})
    records = classes(source=root)
    assert [(r.name, r.real_images) for r in records] == [("ankle boot", 3), ("bag", 0), ("crane", 2)]
    assert records[2].wnid == "n02012849" and "bird" in records[2].definition
    assert records[0].real_dir == str(root / "ankle_boot")


def test_a_text_line_may_name_the_sense_after_the_name(tmp_path: Path):
    path = tmp_path / "c.txt"
    path.write_text("crane n03126707\nfire truck\nbat  n02139199\n")
    records = classes(source=path)
    assert [(r.name, r.wnid) for r in records] == [("crane", "n03126707"), ("fire truck", None), ("bat", "n02139199")]
    assert records[0].hypernym == ("lifting device" if wordnet_dir() else None)  # the sense reaches disambiguate
    assert records[0].definition  # from ImageNet's metadata, or WordNet's gloss


def test_an_image_folder_names_senses_in_its_classes_csv(tmp_path: Path):
    root = _image_folder(tmp_path / "train", {"crane": 1, "bat": 1, "owl": 1})
    (root / "classes.csv").write_text("name,wnid,definition\ncrane,n02012849,\nbat,,a club for hitting a ball\n")
    records = {r.name: r for r in classes(source=root)}
    assert records["crane"].wnid == "n02012849" and "bird" in records["crane"].definition
    assert records["bat"].wnid is None and records["bat"].definition == "a club for hitting a ball"
    assert records["owl"].wnid is None and records["owl"].definition is None
    (root / "classes.csv").write_text("name,wnid\ncrane,n02012849\nheron,n02008041\n")
    with pytest.raises(InputError, match=r"classes.csv: line 3: 'heron' names no class folder"):
        classes(source=root)


def test_real_root_attaches_images_to_a_class_list(tmp_path: Path):
    root = _image_folder(tmp_path / "real", {"fire_truck": 2, "n01440764": 4})
    path = tmp_path / "c.csv"
    path.write_text("name,wnid\nfire truck,\ntench,n01440764\nokapi,\n")
    records = classes(source=path, real_root=root)
    assert [(r.name, r.real_images) for r in records] == [("fire truck", 2), ("tench", 4), ("okapi", 0)]
    assert records[2].real_dir is None
    with pytest.raises(InputError, match="classes.real_root"):
        classes(source=path, real_root=tmp_path / "missing")


def test_empty_image_folder(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no class sub-folders"):
        classes(source=tmp_path / "empty")


@pytest.mark.wordnet
def test_wordnet_lookup_by_offset():
    synset = lookup("n02012849")
    assert synset.lemmas[0] == "crane" and "wading bird" in synset.gloss
    assert lookup("n00000001") is None
    assert lookup("x123") is None
