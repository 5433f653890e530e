"""Config validation: every malformed config is refused with one line naming file, key path and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthdiv.cli.app import main
from synthdiv.config.loader import load_config
from synthdiv.errors import ConfigError

GOOD = """\
run_dir: {run_dir}
seed: 3
classes:
  source: imagenet-1k
  max_classes: 5
"""

# (config text, --set overrides, expected fragment of the one-line message)
MALFORMED = [
    ("run_dir: {run_dir}\nbogus: 1\n", [], "bogus: unknown key"),
    ("seed: 1\n", [], "run_dir: required key is missing"),
    ("run_dir: {run_dir}\nseed: -1\n", [], "seed: input should be greater than or equal to 0, got -1"),
    ("run_dir: {run_dir}\nseed: abc\n", [], "seed: input should be a valid integer"),
    ("run_dir: {run_dir}\ntrain:\n  lr: .inf\n", [], "train.lr: input should be a finite number"),
    ("run_dir: {run_dir}\nclasses:\n  sorce: x.txt\n", [], "classes.sorce: unknown key"),
    ("run_dir: {run_dir}\nclasses: [1, 2]\n", [], "classes: input should be a valid dictionary"),
    ("run_dir: {run_dir}\nclasses:\n  source: imagenet-5k\n", [], "classes.source: unknown ImageNet source"),
    ("run_dir: {run_dir}\nclasses:\n  max_classes: 0\n", [], "classes.max_classes: input should be greater than"),
    ("run_dir: {run_dir}\nmodels:\n  llm:\n    dtype: float8\n", [], "models.llm.dtype: input should be"),
    ("run_dir: {run_dir}\nmodels:\n  clip:\n    model: ''\n", [], "models.clip.model: string should have at least"),
    ("run_dir: {run_dir}\nmodels:\n  foo: {{}}\n", [], "models.foo: unknown key"),
    ("run_dir: {run_dir}\nplan:\n  images_per_class: 10\n  top_up_to: 5\n", [], "plan: set only one of"),
    ("run_dir: {run_dir}\nplan:\n  multiple_of_real: 7\n", [], "plan.multiple_of_real: input should be less than"),
    ("run_dir: {run_dir}\nplan:\n  shard_size: 0\n", [], "plan.shard_size: input should be greater than"),
    ("run_dir: {run_dir}\ngenerate:\n  runner: mpi\n", [], "generate.runner: input should be 'local', 'torchrun'"),
    ("run_dir: {run_dir}\ngenerate:\n  quality: 101\n", [], "generate.quality: input should be less than"),
    ("run_dir: {run_dir}\ntrain:\n  synthetic_fraction: 1.5\n", [], "train.synthetic_fraction: input should be"),
    ("run_dir: {run_dir}\ntrain:\n  aux_norm: maybe\n", [], "train.aux_norm: input should be 'none' or 'aux'"),
    ("run_dir: {run_dir}\ndisambiguate:\n  enabled: perhaps\n", [], "disambiguate.enabled: input should be a valid"),
    ("run_dir: {run_dir}\n", ["seed=-4"], "seed: input should be greater than or equal to 0, got -4"),
    ("run_dir: {run_dir}\n", ["plan.shard_size=zero"], "plan.shard_size: input should be a valid integer"),
    ("run_dir: {run_dir}\n", ["nosuch.key=1"], "nosuch: unknown key"),
    ("run_dir: {run_dir}\n", ["seed"], "--set 'seed': expected section.key=value"),
    ("run_dir: {run_dir}\nseed: 1\n", ["seed.x=1"], "seed is not a section"),
    ("run_dir: {run_dir}\n  bad: [indent\n", [], "invalid YAML"),
    ("- just\n- a list\n", [], "expected a mapping of sections at the top level"),
    ("run_dir: {run_dir}\nevaluate:\n  ood:\n    - {{name: ../x, root: /tmp}}\n", [],
     "evaluate.ood.0.name: name '../x' contains '/'"),
    ("run_dir: {run_dir}\nevaluate:\n  ood:\n    - {{name: /etc/x, root: /tmp}}\n", [], "contains '/'"),
    ("run_dir: {run_dir}\nevaluate:\n  ood:\n    - {{name: '..', root: /tmp}}\n", [], "name '..' is '..'"),
    ("run_dir: {run_dir}\nevaluate:\n  ood:\n    - {{name: \"a\\x1bb\", root: /tmp}}\n", [],
     "name 'a\\x1bb' contains the control character U+001B"),
    ("run_dir: {run_dir}\nevaluate:\n  ood:\n    - {{name: s, root: /tmp}}\n    - {{name: s, root: /tmp}}\n", [],
     "evaluate.ood: set name 's' is taken"),
]


@pytest.mark.parametrize(("text", "overrides", "fragment"), MALFORMED)
def test_malformed_config_is_refused_in_one_line(tmp_path: Path, capsys, text, overrides, fragment):
    run_dir = tmp_path / "run"
    cfg_path = tmp_path / "bad.yaml"
    cfg_path.write_text(text.format(run_dir=run_dir))
    args = ["classes", "-c", str(cfg_path)]
    for item in overrides:
        args += ["--set", item]
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert fragment in err
    assert not run_dir.exists(), "nothing may be written for a bad config"
    if not fragment.startswith("--set"):
        assert str(cfg_path) in err


def test_good_config_loads_with_overrides_and_relative_paths(tmp_path: Path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "classes.txt").write_text("a\nb\n")
    path = tmp_path / "conf" / "run.yaml"
    path.write_text("run_dir: ../runs/x\nclasses:\n  source: classes.txt\n")
    cfg = load_config(path, ["seed=7", "plan.images_per_class=12", "models.llm.options.batch_size=4",
                             "classes.subset=[a, b]"])
    assert cfg.seed == 7
    assert cfg.plan.images_per_class == 12
    assert cfg.models.llm.options == {"batch_size": 4}
    assert cfg.classes.subset == ["a", "b"]
    assert cfg.run_dir == tmp_path / "runs" / "x"
    assert cfg.classes.source == tmp_path / "conf" / "classes.txt"
    assert load_config(path, run_dir=tmp_path / "elsewhere").run_dir == (tmp_path / "elsewhere").resolve()


def test_config_is_frozen(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text(GOOD.format(run_dir=tmp_path / "r"))
    cfg = load_config(path)
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        cfg.seed = 4  # type: ignore[misc]


def test_missing_config_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("role", ["llm", "clip", "generator", "captioner"])
def test_every_role_reads_a_bad_option_the_same_at_load_and_at_build(tmp_path: Path, role):
    """One validator and one error line for every models.<role>, when the config loads and when the registry builds
    the backend from its spec (the LLM had its own format, and captioner options were not checked at load)."""
    from synthdiv.config.backends import registry
    from synthdiv.config.loader import config_from_dict

    path = tmp_path / "run.yaml"
    path.write_text(f"run_dir: run\nmodels:\n  {role}:\n    options: {{bogus_key: 1}}\n")
    with pytest.raises(ConfigError, match=rf"run\.yaml: models\.{role}\.options\.bogus_key: unknown key; expected "):
        load_config(path)
    cfg = config_from_dict({"run_dir": str(tmp_path / "run")})
    spec = getattr(cfg.models, role).model_copy(update={"options": {"bogus_key": 1}})
    with pytest.raises(ConfigError, match=rf"^models\.{role}\.options\.bogus_key: unknown key; expected one of: "):
        registry(role).build(spec, role)  # refused before any model is loaded
