"""Config inputs that used to pass or to run away (issue 24, part A): duplicate keys, alias bombs and huge files,
an empty run directory, names too long for a path, an empty class subset. Each is one line, exit 2, nothing
written."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthdiv.cli.app import main
from synthdiv.config._yaml import MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, MAX_CONFIG_VALUES
from synthdiv.config.loader import load_config
from synthdiv.errors import ConfigError


def _refused(tmp_path: Path, capsys, text: str, *extra: str, command: str = "classes") -> str:
    """Run ``synthdiv <command> -c bad.yaml <extra>``: exit 2, one line, nothing written; returns the line."""
    (tmp_path / "c.txt").write_text("goldfish\n")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main([command, "-c", str(path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing may be written for a bad config"
    return err


# --- 1. duplicate keys -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("run_dir: run\nseed: 1\nseed: 2\n", 3, "seed"),
        ("run_dir: run\nclasses:\n  source: c.txt\n  max_classes: 1\n  max_classes: 2\n", 5, "max_classes"),
        ("run_dir: run\ntrain:\n  model_kwargs: {drop_rate: 0.1, drop_rate: 0.2}\n", 3, "drop_rate"),
        ("run_dir: run\nclasses: {source: c.txt}\nclasses: {max_classes: 1}\n", 3, "classes"),
    ],
)
def test_a_duplicate_key_is_refused_with_the_line_of_the_second(tmp_path: Path, capsys, text, line, key):
    err = _refused(tmp_path, capsys, text)
    assert f"bad.yaml: line {line}: duplicate key '{key}'" in err, err


def test_a_duplicate_key_in_a_set_value_is_refused(tmp_path: Path, capsys):
    err = _refused(tmp_path, capsys, "run_dir: run\nclasses:\n  source: c.txt\n",
                   "--set", "train.model_kwargs={a: 1, a: 2}")
    assert "--set 'train.model_kwargs={a: 1, a: 2}': duplicate key 'a'" in err, err


def test_merge_keys_still_override_on_purpose(tmp_path: Path):
    """``<<: *base`` then the same key is YAML's way to override a shared block, not a duplicate."""
    path = tmp_path / "c.yaml"
    path.write_text("run_dir: run\ntrain:\n  <<: {lr: 0.1, epochs: 2}\n  lr: 0.5\n")
    cfg = load_config(path)
    assert cfg.train.lr == 0.5 and cfg.train.epochs == 2


# --- 2. size bounds before parsing -------------------------------------------------------------------------------

BOMB = """\
run_dir: run
classes:
  source: c.txt
train:
  model_kwargs:
    a: &a [x, x, x, x, x, x, x, x, x, x]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
    h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
    i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", ["classes", "check", "status", "run", "verify"])
def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path: Path, capsys, command):
    err = _refused(tmp_path, capsys, BOMB, command=command)
    assert f"bad.yaml: YAML aliases expand to more than {MAX_CONFIG_VALUES:,} values" in err, err
    assert not (tmp_path / "run").exists()


def test_a_recursive_alias_is_refused(tmp_path: Path, capsys):
    err = _refused(tmp_path, capsys, "run_dir: run\ntrain:\n  model_kwargs: &k {self: *k}\n")
    assert "bad.yaml: line 3: an alias refers to the value that holds it" in err, err


def test_an_alias_bomb_in_a_set_value_is_refused(tmp_path: Path, capsys):
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"] + [
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]" for i in range(7)]
    err = _refused(tmp_path, capsys, "run_dir: run\nclasses:\n  source: c.txt\n",
                   "--set", "train.model_kwargs={" + ", ".join(levels) + "}")
    assert f"YAML aliases expand to more than {MAX_CONFIG_VALUES:,} values" in err and "--set" in err, err


def test_a_huge_config_file_is_refused_before_it_is_read(tmp_path: Path, capsys):
    text = "run_dir: run\n" + "# padding\n" * (MAX_CONFIG_BYTES // 10 + 1)
    err = _refused(tmp_path, capsys, text)
    assert f"bad.yaml: {len(text.encode()):,} bytes; a config file is at most {MAX_CONFIG_BYTES:,} bytes" in err, err


def test_deep_nesting_is_refused_in_one_line(tmp_path: Path, capsys):
    depth = MAX_CONFIG_DEPTH + 5
    err = _refused(tmp_path, capsys, "run_dir: run\ntrain:\n  model_kwargs: {a: " + "[" * depth + "]" * depth + "}\n")
    assert f"bad.yaml: line 3: nested more than {MAX_CONFIG_DEPTH} levels deep" in err, err


def test_anchors_and_aliases_within_the_bound_still_work(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("run_dir: run\ntrain:\n  model_kwargs: {a: &a [1, 2], b: *a}\n")
    assert load_config(path).train.model_kwargs == {"a": [1, 2], "b": [1, 2]}


# --- 3. an empty run directory -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", " ", "''", "null"])
def test_an_empty_run_dir_setting_is_refused(tmp_path: Path, capsys, monkeypatch, value):
    monkeypatch.chdir(tmp_path)
    err = _refused(tmp_path, capsys, "run_dir: run\nclasses:\n  source: c.txt\n", "--set", f"run_dir={value}")
    assert "bad.yaml: run_dir: expected a folder path" in err, err


def test_an_empty_run_dir_in_the_file_is_refused(tmp_path: Path, capsys):
    err = _refused(tmp_path, capsys, "run_dir: ''\nclasses:\n  source: c.txt\n")
    assert "bad.yaml: run_dir: expected a folder path" in err, err


def test_the_api_refuses_an_empty_run_dir(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("run_dir: run\n")
    with pytest.raises(ConfigError, match="run_dir: empty"):
        load_config(path, run_dir="")


def test_run_dir_dot_still_means_the_current_directory(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "c.yaml"
    path.write_text("run_dir: run\n")
    assert load_config(path, run_dir=".").run_dir == tmp_path


# --- 4. names that become path components ------------------------------------------------------------------------

LONG = "v" * 300


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (f"train:\n  variants:\n    {LONG}: {{}}\n", "train.variants: variant name 'vvv"),
        (f"evaluate:\n  ood:\n    - {{name: {LONG}, root: /tmp}}\n", "evaluate.ood.0.name: name 'vvv"),
        (f"adapt:\n  variant: {LONG}\n", "adapt.variant: name 'vvv"),
        (f"adapt:\n  eval_set: {LONG}\n", "adapt.eval_set: name 'vvv"),
        (f"report:\n  baseline: {LONG}\n", "report.baseline: name 'vvv"),
        (f"filters:\n  {LONG}: {{kind: duplicates}}\n", "filters: filter name 'vvv"),
        (f"train:\n  filters: [{LONG}]\n", "train.filters.0: name 'vvv"),
        ("adapt:\n  eval_set: ../../etc/passwd\n", "adapt.eval_set: name '../../etc/passwd' contains '/'"),
        ("adapt:\n  variant: '..'\n", "adapt.variant: name '..' is '..'"),
    ],
)
def test_a_name_too_long_for_a_path_is_refused_at_validation(tmp_path: Path, capsys, text, fragment):
    err = _refused(tmp_path, capsys, "run_dir: run\nclasses:\n  source: c.txt\n" + text)
    assert fragment in err, err
    if "vvv" in fragment:
        assert "has 300 characters; at most 200" in err, err


def test_a_variant_override_cannot_bring_a_long_filter_name(tmp_path: Path, capsys):
    err = _refused(tmp_path, capsys, "run_dir: run\nclasses:\n  source: c.txt\ntrain:\n  variants:\n"
                   f"    a: {{filters: [{LONG}]}}\n")
    assert "train: variant 'a': filters.0: name 'vvv" in err and "has 300 characters; at most 200" in err, err


# --- 5. an empty class subset ------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["file", "set"])
def test_an_empty_subset_is_refused(tmp_path: Path, capsys, how):
    text = "run_dir: run\nclasses:\n  source: c.txt\n" + ("  subset: []\n" if how == "file" else "")
    extra = ["--set", "classes.subset=[]"] if how == "set" else []
    err = _refused(tmp_path, capsys, text, *extra)
    assert "classes.subset: expected at least one class (or no subset key for every class)" in err, err
