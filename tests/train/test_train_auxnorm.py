"""Auxiliary norms: routing by the split point, isolation of the two domains' statistics and gradients, eval on the
main norms, conversion of timm models (BatchNorm, BatchNormAct2d, LayerNorm, GroupNorm; ``auto`` converts every kind,
so a ViT gets auxiliary LayerNorms), and export through plain timm."""

from __future__ import annotations

import copy
import json
import logging

import pytest
import timm
import torch
from safetensors.torch import load_file
from torch import nn

from synthdiv.stages.train.auxnorm import (
    NORM_KINDS,
    AuxNorm,
    aux_layers,
    aux_norm_counts,
    convert_aux_norm,
    route,
    strip_aux_norm,
)
from synthdiv.stages.train.export import export_model


def _bn_model(momentum: float | None = 1.0) -> nn.Module:
    return convert_aux_norm(nn.Sequential(nn.BatchNorm2d(3, momentum=momentum)))


def _vit() -> nn.Module:
    return timm.create_model("test_vit", num_classes=3, img_size=32, patch_size=8)


def test_running_means_follow_the_blocks_of_known_statistics():
    model = _bn_model().train()
    layer = aux_layers(model)[0]
    real = torch.randn(6, 3, 4, 4) + 5.0
    syn = torch.randn(2, 3, 4, 4) - 3.0
    with route([layer], 6):
        model(torch.cat([real, syn]))
    torch.testing.assert_close(layer.main.running_mean, real.mean((0, 2, 3)))
    torch.testing.assert_close(layer.aux.running_mean, syn.mean((0, 2, 3)))
    # a batch of one domain leaves the other domain's statistics exactly as they were
    main_before, aux_before = layer.main.running_mean.clone(), layer.aux.running_mean.clone()
    with route([layer], 4):
        model(torch.randn(4, 3, 4, 4) + 100)
    assert torch.equal(layer.aux.running_mean, aux_before)
    assert not torch.equal(layer.main.running_mean, main_before)
    main_before = layer.main.running_mean.clone()
    with route([layer], 0):
        model(torch.randn(4, 3, 4, 4) - 100)
    assert torch.equal(layer.main.running_mean, main_before)
    assert layer.split is None  # route() resets the split point


def test_in_a_timm_cnn_real_samples_never_touch_aux_statistics_and_vice_versa():
    torch.manual_seed(0)
    base = convert_aux_norm(timm.create_model("test_resnet", num_classes=4)).train()
    real = torch.randn(4, 3, 32, 32)
    syn_a, syn_b = torch.randn(4, 3, 32, 32) * 3 + 1, torch.randn(4, 3, 32, 32) - 2
    stats = []
    for real_block, syn_block in ((real, syn_a), (real, syn_b), (real * 2 + 1, syn_a)):
        model = copy.deepcopy(base)
        with route(aux_layers(model), 4):
            model(torch.cat([real_block, syn_block]))
        stats.append([(m.main.running_mean.clone(), m.aux.running_mean.clone()) for m in aux_layers(model)])
    assert len(stats[0]) == 15
    for (m0, a0), (m1, a1), (m2, a2) in zip(*stats, strict=True):
        assert torch.equal(m0, m1)  # other synthetic data: the same main statistics
        assert not torch.equal(a0, a1)
        assert torch.equal(a0, a2)  # other real data: the same aux statistics
        assert not torch.equal(m0, m2)


def test_gradients_of_real_samples_reach_main_norm_parameters_only():
    model = convert_aux_norm(timm.create_model("test_resnet", num_classes=4)).train()
    x = torch.randn(8, 3, 32, 32)
    with route(aux_layers(model), 8):
        model(x).sum().backward()
    for layer in aux_layers(model):
        assert layer.aux.weight.grad is None and layer.main.weight.grad is not None


def test_eval_uses_the_main_norms_only():
    torch.manual_seed(0)
    model = convert_aux_norm(timm.create_model("test_resnet", num_classes=4))
    for layer in aux_layers(model):  # garbage aux statistics and affine: eval must not see them
        layer.aux.running_mean.fill_(50.0)
        layer.aux.weight.data.fill_(-7.0)
    plain = strip_aux_norm(model).eval()
    assert not any(isinstance(m, AuxNorm) for m in plain.modules())
    model.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad(), route(aux_layers(model), 0):  # even a stray split point is ignored in eval mode
        torch.testing.assert_close(model(x), plain(x))
    reference = timm.create_model("test_resnet", num_classes=4).eval()
    reference.load_state_dict(plain.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(reference(x), model(x))


@pytest.mark.parametrize(
    ("name", "layers", "kwargs", "kind"),
    [
        ("test_efficientnet", ["batchnorm"], {}, "BatchNormAct2d"),
        ("test_vit", ["layernorm"], {"img_size": 32}, "LayerNorm"),
        ("test_efficientnet_gn", ["groupnorm"], {}, "GroupNormAct"),
        ("test_convnext", ["layernorm"], {}, "LayerNorm2d"),
    ],
)
def test_any_timm_model_converts_routes_and_strips(name, layers, kwargs, kind):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=3, **kwargs)
    reference_keys = set(model.state_dict())
    convert_aux_norm(model, layers)
    converted = aux_layers(model)
    assert converted and all(type(m.main).__name__ in (kind, "LayerNorm", "LayerNorm2d") for m in converted)
    model.train()
    x = torch.randn(4, 3, 32, 32)
    with route(converted, 2):
        model(x).sum().backward()
    assert all(m.aux.weight.grad is not None and m.main.weight.grad is not None for m in converted)
    assert set(strip_aux_norm(model).state_dict()) == reference_keys


def test_export_round_trips_through_plain_timm(tmp_path):
    torch.manual_seed(0)
    model = convert_aux_norm(timm.create_model("test_resnet", num_classes=4)).train()
    with route(aux_layers(model), 4):  # move the statistics of both domains away from their initial values
        for _ in range(3):
            model(torch.cat([torch.randn(4, 3, 32, 32) + 1, torch.randn(4, 3, 32, 32) * 2]))
    model = model.to(memory_format=torch.channels_last)
    folder = export_model(model, tmp_path / "export" / "v", ["a", "b", "c", "d"],
                          {"input_size": (3, 32, 32), "crop_pct": 1.0})
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert not any(".aux." in k or ".main." in k for k in load_file(folder / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "test_resnet" and config["num_classes"] == 4
    assert config["label_names"] == ["a", "b", "c", "d"] and config["pretrained_cfg"]["input_size"] == [3, 32, 32]
    loaded = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x))
    export_model(model, folder)  # re-export replaces the folder atomically
    assert not list(folder.parent.glob("*.tmp-*"))


@pytest.mark.parametrize(
    ("name", "kwargs", "kind", "base"),
    [
        ("test_resnet", {}, "batchnorm", nn.modules.batchnorm._BatchNorm),
        ("test_vit", {"img_size": 32}, "layernorm", nn.LayerNorm),
        ("test_convnext", {}, "layernorm", nn.LayerNorm),
        ("test_efficientnet_gn", {}, "groupnorm", nn.GroupNorm),
    ],
)
def test_auto_converts_every_norm_the_model_has_and_says_how_many(caplog, name, kwargs, kind, base):
    model = timm.create_model(name, num_classes=3, **kwargs)
    expected = sum(isinstance(m, base) for m in model.modules())
    with caplog.at_level(logging.INFO, logger="synthdiv.stages.train.auxnorm"):
        convert_aux_norm(model)  # the default is auto
    assert expected > 0 and aux_norm_counts(model) == {kind: expected}
    assert f"{kind} {expected}" in caplog.text
    inside = {id(m) for layer in aux_layers(model) for m in layer.modules()}
    norms = tuple(t for kinds in NORM_KINDS.values() for t in kinds)
    assert not [m for m in model.modules() if isinstance(m, norms) and id(m) not in inside]  # none left shared


def test_the_explicit_list_converts_only_its_kinds():
    model = convert_aux_norm(timm.create_model("test_vit", num_classes=3, img_size=32), ["batchnorm"])
    assert aux_layers(model) == []
    with pytest.raises(ValueError, match="unknown norm kind 'instancenorm'"):
        convert_aux_norm(_vit(), ["layernorm", "instancenorm"])


def test_in_a_vit_each_domain_trains_only_its_own_layernorms():
    torch.manual_seed(0)
    model = convert_aux_norm(_vit()).train()
    layers = aux_layers(model)
    assert aux_norm_counts(model) == {"layernorm": 2 * 6 + 1}  # two per block, 6 blocks, and the final norm
    x = torch.randn(6, 3, 32, 32)
    for rows, own, other in ((slice(0, 4), "main", "aux"), (slice(4, 6), "aux", "main")):
        model.zero_grad(set_to_none=True)
        with route(layers, 4, 6):
            model(x)[rows].sum().backward()  # the loss of one domain's samples only
        for layer in layers:
            assert all(p.grad is None or not p.grad.any() for p in getattr(layer, other).parameters())
            assert all(p.grad is not None and p.grad.any() for p in getattr(layer, own).parameters())


def test_a_batch_folded_with_windows_splits_at_the_matching_row():
    layer = AuxNorm(nn.LayerNorm(4)).train()
    layer.aux.weight.data.fill_(-1.0)
    x = torch.randn(3, 2, 4).reshape(6, 4)  # 3 samples, 2 windows each, batch-major
    with route([layer], 2, 3):
        out = layer(x)
    torch.testing.assert_close(out[:4], layer.main(x[:4]))
    torch.testing.assert_close(out[4:], layer.aux(x[4:]))
    with route([layer], 2, 4), pytest.raises(RuntimeError, match="6 rows from a batch of 4"):
        layer(x)


def test_a_vit_with_aux_norm_exports_as_plain_timm(tmp_path):
    torch.manual_seed(0)
    plain_keys = set(_vit().state_dict())
    model = convert_aux_norm(_vit()).train()
    with route(aux_layers(model), 4, 8):
        model(torch.randn(8, 3, 32, 32)).sum().backward()
    assert set(strip_aux_norm(model).state_dict()) == plain_keys
    folder = export_model(model, tmp_path / "vit", ["a", "b", "c"], {"input_size": (3, 32, 32), "crop_pct": 1.0})
    loaded = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    assert not any(isinstance(m, AuxNorm) for m in loaded.modules())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x))


def test_the_split_point_is_exact_at_its_edges_and_no_split_means_all_real():
    layer = _bn_model(momentum=None).train()[0]  # momentum None: a cumulative average, so every batch shows
    x = torch.randn(5, 3, 4, 4)
    layer(x)  # training without route(): every sample is real
    assert (int(layer.main.num_batches_tracked), int(layer.aux.num_batches_tracked)) == (1, 0)
    with route([layer], 0):  # no real sample: the main norm is not even called with an empty block
        layer(x)
    assert (int(layer.main.num_batches_tracked), int(layer.aux.num_batches_tracked)) == (1, 1)
    fresh = _bn_model().train()[0]
    with route([fresh], 1):  # one real sample: it alone makes the main statistics
        fresh(x)
    torch.testing.assert_close(fresh.main.running_mean, x[:1].mean((0, 2, 3)))
    torch.testing.assert_close(fresh.aux.running_mean, x[1:].mean((0, 2, 3)))
    assert fresh.extra_repr() == "main: real samples (and eval), aux: synthetic samples"


def test_a_folded_batch_that_does_not_divide_is_refused_with_the_fix():
    layer = AuxNorm(nn.LayerNorm(4)).train()
    with route([layer], 2, 4), pytest.raises(RuntimeError) as err:
        layer(torch.randn(6, 4))
    assert str(err.value) == ("aux norm: a norm layer got 6 rows from a batch of 4; it cannot tell real from synthetic "
                              "samples (set train.aux_norm_layers to skip its kind)")


def test_conversion_by_name_in_steps_and_what_it_logs(caplog):
    from synthdiv.stages.train.auxnorm import _timm_layers

    assert _timm_layers("RmsNorm", "NoSuchLayer") == (timm.layers.RmsNorm,)
    model = nn.Sequential(nn.BatchNorm2d(3), nn.LayerNorm(3))
    with caplog.at_level(logging.INFO, logger="synthdiv.stages.train.auxnorm"):
        convert_aux_norm(model, "batchnorm")  # one kind by name
        convert_aux_norm(model, "layernorm")  # the converted sibling before it does not stop the walk
        convert_aux_norm(nn.Sequential(nn.Linear(2, 2)), ["batchnorm", "layernorm"])
        convert_aux_norm(nn.Sequential(nn.BatchNorm2d(3), nn.LayerNorm(3), nn.LayerNorm(3)))
    assert aux_norm_counts(model) == {"batchnorm": 1, "layernorm": 1}
    assert caplog.messages == [
        "aux norm: auxiliary copies for synthetic samples of 1 norm layers (batchnorm 1)",
        "aux norm: auxiliary copies for synthetic samples of 1 norm layers (layernorm 1)",
        "aux norm: the model has no batchnorm/layernorm layers; nothing converted",
        "aux norm: auxiliary copies for synthetic samples of 3 norm layers (batchnorm 1, layernorm 2)",
    ]
    with pytest.raises(ValueError) as err:
        convert_aux_norm(model, ["x"])
    assert str(err.value) == ("unknown norm kind 'x'; expected 'auto' or a list of batchnorm, layernorm, groupnorm, "
                              "rmsnorm")
    assert aux_norm_counts(nn.Sequential(AuxNorm(nn.Identity()))) == {"Identity": 1}  # a kind not in NORM_KINDS


def test_stripping_leaves_the_model_it_strips_as_it_was():
    model = _bn_model()
    plain = strip_aux_norm(model)
    assert isinstance(model[0], AuxNorm) and isinstance(plain[0], nn.BatchNorm2d)
    assert plain[0] is not model[0].main  # a copy: training the stripped model does not train this one
