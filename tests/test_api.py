"""The Python API (``synthdiv.open_run``, ``synthdiv.core.rundir``, the aux norm functions) and the example that adds a
run to a timm-style training loop, on the toy run of tests/data/toydata.py."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import types
from pathlib import Path

import pyarrow as pa
import pytest

import synthdiv
from synthdiv.config.loader import dump_config
from synthdiv.core.rundir import RunDir
from synthdiv.errors import InputError, StageOrderError
from synthdiv.utils.io import write_parquet_atomic

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "timm_train_with_synthdiv.py"


@pytest.fixture
def toy_run(toy, make_config) -> synthdiv.Run:
    """The toy run with its config.yaml (as any stage writes it), image ``img00x0000`` flagged degenerate."""
    cfg = make_config(run_dir=str(toy["run"]))
    run = RunDir(cfg.run_dir)
    run.config.write_text(dump_config(cfg))
    part = run.manifest_part(0)
    import pyarrow.parquet as pq

    table = pq.read_table(part)
    flags = [i == "img00x0000" for i in table.column("image_id").to_pylist()]
    table = table.set_column(table.column_names.index("degenerate"), "degenerate", pa.array(flags))
    write_parquet_atomic(table, part)
    return synthdiv.open_run(toy["run"])


def test_import_and_help_stay_torch_free():
    code = ("import sys, synthdiv; synthdiv.open_run; synthdiv.Run; "
            "assert 'torch' not in sys.modules, 'import synthdiv imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True)
    code = ("import sys\nfrom synthdiv.cli.app import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'synthdiv --help imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_everything_public_is_listed_and_resolves():
    for name in synthdiv.__all__:
        assert getattr(synthdiv, name) is not None
    assert synthdiv.convert_aux_norm is importlib.import_module("synthdiv.stages.train.auxnorm").convert_aux_norm
    with pytest.raises(AttributeError):
        synthdiv.no_such_thing  # noqa: B018
    assert isinstance(synthdiv.run, types.FunctionType) and synthdiv.run is importlib.import_module("synthdiv.api").run


def test_open_run_reads_the_artifacts_as_arrow_tables(toy_run, toy, tmp_path):
    assert synthdiv.open_run(toy_run.config).root == toy_run.root  # a config object
    assert synthdiv.open_run(toy_run.dir.config).root == toy_run.root  # a config file
    assert toy_run.num_classes == 4
    assert toy_run.classes().column("name").to_pylist() == ["class0", "class1", "class2", "class3"]
    manifest = toy_run.manifest()
    assert isinstance(manifest, pa.Table) and manifest.num_rows == 32
    assert toy_run.manifest("filtered").num_rows == 32  # no score filter configured
    assert "img00x0000" not in toy_run.manifest("train").column("image_id").to_pylist()
    assert toy_run.manifest("train").num_rows == 31
    with pytest.raises(StageOrderError, match="synthdiv score"):
        toy_run.scores()
    with pytest.raises(StageOrderError, match="synthdiv plan"):
        toy_run.plan()
    with pytest.raises(InputError, match="view 'some'"):
        toy_run.manifest("some")
    with pytest.raises(InputError, match="not found"):
        synthdiv.open_run(tmp_path / "nowhere")
    with pytest.raises(InputError, match="no config.yaml"):
        synthdiv.open_run(toy["real"])


def test_the_filter_view_follows_the_scores(toy_run):
    ids = toy_run.manifest().column("image_id").to_pylist()
    sims = [0.9 if i.endswith(("0000", "0001")) else 0.1 for i in ids]
    write_parquet_atomic(pa.table({"image_id": ids, "similarity": pa.array(sims, pa.float32())}), toy_run.dir.scores)
    filtered = synthdiv.open_run(toy_run.root, ["score.min_similarity=0.5"])
    assert filtered.scores().num_rows == 32
    assert filtered.manifest("filtered").num_rows == 8
    assert filtered.manifest("train").num_rows == 7  # minus the degenerate one
    assert len(filtered.synthetic_dataset(view="train")) == 7


def test_synthetic_dataset_and_mixed_loader(toy_run):
    import torch
    from torchvision.transforms import ToTensor

    ds = toy_run.synthetic_dataset()
    assert len(ds) == 31 and ds.image_ids == sorted(ds.image_ids)
    image, label = ds[0]
    assert image.size == (16, 16) and label == int(ds.image_ids[0][3:5])
    tensors = toy_run.synthetic_dataset(ToTensor(), view="all")
    batch = next(iter(torch.utils.data.DataLoader(tensors, batch_size=8)))
    assert batch[0].shape == (8, 3, 16, 16) and batch[1].tolist() == tensors.labels[:8].tolist()

    loader = toy_run.mixed_loader(ToTensor(), batch_size=8, steps=3, synthetic_fraction=0.25, num_workers=0)
    batches = list(loader)
    assert len(batches) == 3
    for b in batches:
        assert b["n_real"] == 6 and b["domain"].tolist() == [0] * 6 + [1] * 2
    again = list(toy_run.mixed_loader(ToTensor(), batch_size=8, steps=1, synthetic_fraction=0.25, start_step=2,
                                      num_workers=0))
    assert torch.equal(again[0]["images"], batches[2]["images"])  # step 2 is step 2, resumed or not


def test_run_calls_the_stage_engine(toy, make_config, tmp_path):
    cfg = make_config(run_dir=str(tmp_path / "fresh"), classes={"source": str(toy["real"])})
    results = synthdiv.run(cfg, until="classes")
    assert list(results) == ["classes"]
    assert synthdiv.open_run(tmp_path / "fresh").classes().num_rows == 4


@pytest.mark.timeout(300)
def test_the_timm_example_trains_on_a_run(toy_run, tmp_path):
    import timm
    import torch

    spec = importlib.util.spec_from_file_location("timm_train_with_synthdiv", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / "model"
    loss = example.main(["--run", str(toy_run.root), "--model", "resnet10t", "--img-size", "16", "--batch-size", "8",
                         "--steps", "3", "--workers", "0", "--out", str(out)])
    assert math.isfinite(loss) and loss > 0
    model = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    assert model.num_classes == 4
    assert not any("aux" in k for k in model.state_dict())
    assert model(torch.zeros(1, 3, 16, 16)).shape == (1, 4)
