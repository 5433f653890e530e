"""The export loads with no synthdiv code: through timm's ``local-dir:`` and through transformers' timm wrapper."""

from __future__ import annotations

import json

import pytest
import torch

from synthdiv.stages.train.auxnorm import convert_aux_norm
from synthdiv.stages.train.export import export_model

DATA = {"input_size": (3, 32, 32), "crop_pct": 0.9, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


@pytest.mark.parametrize("arch", ["resnet18", "vit_tiny_patch16_224"])
def test_export_loads_in_timm_and_in_transformers(tmp_path, arch):
    import timm
    from transformers import AutoModelForImageClassification

    torch.manual_seed(0)
    kwargs = {"img_size": 32} if arch.startswith("vit") else {}
    model = convert_aux_norm(timm.create_model(arch, num_classes=3, **kwargs),
                             ["layernorm"] if arch.startswith("vit") else ["batchnorm"]).eval()
    folder = export_model(model, tmp_path / "export", ["cat", "dog", "crane"], DATA)
    config = json.loads((folder / "config.json").read_text())
    assert config["num_classes"] == 3 and "num_classes" not in config.get("model_args", {})

    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = model(x)
        via_timm = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()(x)
        hf = AutoModelForImageClassification.from_pretrained(str(folder)).eval()
        via_hf = hf(pixel_values=x).logits
    assert hf.config.id2label == {0: "cat", 1: "dog", 2: "crane"}
    torch.testing.assert_close(via_timm, want)
    torch.testing.assert_close(via_hf, want)
