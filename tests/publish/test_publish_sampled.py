"""A run made with generate.sampling publishes each image's own guidance scale and the guidance interval, and its
images are made again exactly from the recipe (the scale is drawn from the image's seed)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from synthdiv.config.models import generator_id
from synthdiv.core.rundir import RunDir
from synthdiv.engine.runner import run_stage
from synthdiv.publish.build import publish
from synthdiv.publish.regenerate import regenerate_sample
from synthdiv.stages.generate.reader import read_manifest
from tests.generate.conftest import CLASS_NAMES, write_inputs
from tests.publish.conftest import finished_config


@pytest.mark.timeout(600)
def test_a_sampled_run_publishes_each_images_guidance_and_is_made_again_exactly(tmp_path, tiny_model_dir):
    cfg = finished_config(tmp_path, tiny_model_dir, generate={
        "batch_size": 2, "torch_threads": 1, "sampling": {"guidance_range": [1.0, 8.0], "interval": [0.0, 0.5]}},
        train={"filters": []})
    run = RunDir(cfg.run_dir)
    write_inputs(run, 2, 3, generator_id(cfg.models.generator))
    run.classes.write_text("".join(json.dumps({"index": c, "name": n, "wnid": None, "definition": None,
                                               "real_images": 0, "real_dir": None}) + "\n"
                                   for c, n in enumerate(CLASS_NAMES)))
    run_stage(cfg, "generate")
    out = publish(cfg, tmp_path / "sampled").path
    manifest = read_manifest(run)
    metadata = pq.read_table(out / "metadata")
    made = dict(zip(manifest.column("image_id").to_pylist(), manifest.column("guidance").to_pylist(), strict=True))
    assert dict(zip(metadata.column("key").to_pylist(), metadata.column("guidance").to_pylist(), strict=True)) == made
    assert len(set(made.values())) == 6  # each image its own scale
    assert metadata.column("guidance_interval").to_pylist() == [[0.0, 0.5]] * 6
    again = regenerate_sample(out, 3, model=str(tiny_model_dir))
    assert (again.checked, again.exact) == (3, 3)
