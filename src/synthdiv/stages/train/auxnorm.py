"""Auxiliary normalization: a second copy of every norm layer, used by synthetic samples only.

Real and synthetic images have different statistics; sharing BatchNorm statistics between them hurts the real
domain. As in AdvProp (Xie et al., 2020) and the paper this package implements, each norm layer gets an auxiliary
copy: in training the first ``split`` samples of a batch (the real block, see :mod:`synthdiv.data.mixed`) go
through the main layer and the rest through the auxiliary one, so neither domain's samples ever touch the other's
statistics or affine parameters. In eval mode only the main layer is used, and :func:`strip_aux_norm` returns the
plain model (the layout timm would build) for export. Unlike timm's ``SplitBatchNorm2d``, which assumes equal splits,
the split point is set per batch with :func:`route`.

Every norm kind can be converted: BatchNorm (CNNs), LayerNorm (ViT, DeiT, Swin, ConvNeXt), GroupNorm and RMSNorm;
``"auto"`` converts all of them, so a ViT gets auxiliary LayerNorms as a ResNet gets auxiliary BatchNorms.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections import Counter
from collections.abc import Iterator, Sequence

import torch
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["AuxNorm", "convert_aux_norm", "strip_aux_norm", "aux_layers", "aux_norm_counts", "route", "NORM_KINDS"]


def _timm_layers(*names: str) -> tuple[type[nn.Module], ...]:
    try:
        import timm.layers
    except ImportError:
        return ()
    return tuple(getattr(timm.layers, n) for n in names if hasattr(timm.layers, n))


# Subclasses count as their base kind (timm's BatchNormAct2d, LayerNorm, LayerNorm2d, GroupNormAct, ...); timm's
# RMSNorms derive from nn.Module, so they are named.
NORM_KINDS: dict[str, tuple[type[nn.Module], ...]] = {
    "batchnorm": (nn.modules.batchnorm._BatchNorm,),
    "layernorm": (nn.LayerNorm,),
    "groupnorm": (nn.GroupNorm,),
    "rmsnorm": (*((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
                *_timm_layers("RmsNorm", "RmsNorm2d", "RmsNormFp32", "RmsNorm2dFp32", "SimpleNorm", "SimpleNorm2d",
                              "SimpleNormFp32", "SimpleNorm2dFp32")),
}


class AuxNorm(nn.Module):
    """A norm layer (``main``) with an auxiliary copy (``aux``) for the samples after the split point.

    Args:
        main: The original norm layer; it keeps its parameters and statistics.
    """

    def __init__(self, main: nn.Module) -> None:
        super().__init__()
        self.main = main
        self.aux = copy.deepcopy(main)
        self.split: int | None = None  # leading samples that are real; None: all real
        self.batch: int | None = None  # samples in the batch the split refers to; None: not checked

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.split is None:
            return self.main(x)
        split, n = self.split, x.shape[0]
        if self.batch and n != self.batch:
            if n % self.batch:
                raise RuntimeError(f"aux norm: a norm layer got {n} rows from a batch of {self.batch}; it cannot tell "
                                   "real from synthetic samples (set train.aux_norm_layers to skip its kind)")
            split *= n // self.batch  # the batch folded with windows or crops, batch-major as timm does
        if split >= n:
            return self.main(x)
        if split <= 0:
            return self.aux(x)
        # split (views; its backward is one cat) rather than two slices (whose backward is two zero-filled copies)
        real, synthetic = x.split([split, n - split], dim=0)
        return torch.cat([self.main(real), self.aux(synthetic)], dim=0)

    def extra_repr(self) -> str:
        return "main: real samples (and eval), aux: synthetic samples"


def _kind(module: nn.Module, kinds: Sequence[str]) -> str | None:
    return next((k for k in kinds if isinstance(module, NORM_KINDS[k])), None)


def _replace(model: nn.Module, kinds: Sequence[str], counts: Counter[str]) -> None:
    for name, child in list(model.named_children()):
        if isinstance(child, AuxNorm):
            continue
        kind = _kind(child, kinds)
        if kind:
            setattr(model, name, AuxNorm(child))
            counts[kind] += 1
        else:
            _replace(child, kinds, counts)


def convert_aux_norm(model: nn.Module, layers: str | Sequence[str] = "auto") -> nn.Module:
    """Give every norm layer of the kinds in ``layers`` an auxiliary copy, in place; returns ``model``.

    Logs how many layers of each kind were converted (:func:`aux_norm_counts` tells it again later).

    Args:
        model: Any torch model (timm CNNs, ViTs, Swins, ConvNeXts); subclasses such as timm's ``BatchNormAct2d``,
            ``LayerNorm`` and ``LayerNorm2d`` count as their base kind.
        layers: ``"auto"`` (every kind of :data:`NORM_KINDS`), or any of ``"batchnorm"``, ``"layernorm"``,
            ``"groupnorm"``, ``"rmsnorm"``.

    Raises:
        ValueError: An unknown layer kind.
    """
    kinds = list(NORM_KINDS) if layers == "auto" else [layers] if isinstance(layers, str) else list(layers)
    unknown = [k for k in kinds if k not in NORM_KINDS]
    if unknown:
        raise ValueError(f"unknown norm kind {unknown[0]!r}; expected 'auto' or a list of {', '.join(NORM_KINDS)}")
    counts: Counter[str] = Counter()
    _replace(model, kinds, counts)
    if not counts:
        logger.warning("aux norm: the model has no %s layers; nothing converted", "/".join(kinds))
    else:
        logger.info("aux norm: auxiliary copies for synthetic samples of %d norm layers (%s)", sum(counts.values()),
                    ", ".join(f"{k} {counts[k]}" for k in kinds if counts[k]))
    return model


def aux_norm_counts(model: nn.Module) -> dict[str, int]:
    """Converted norm layers of each kind in ``model``, e.g. ``{"layernorm": 25}``."""
    counts = Counter(_kind(m.main, list(NORM_KINDS)) or type(m.main).__name__ for m in aux_layers(model))
    return dict(sorted(counts.items()))


def aux_layers(model: nn.Module) -> list[AuxNorm]:
    """The :class:`AuxNorm` layers of ``model`` (keep the list; :func:`route` sets their split point)."""
    return [m for m in model.modules() if isinstance(m, AuxNorm)]


@contextlib.contextmanager
def route(layers: Sequence[AuxNorm], n_real: int | None, batch: int | None = None) -> Iterator[None]:
    """Within the block, the first ``n_real`` samples of each batch use the main norms, the rest the aux norms.

    With ``batch`` (the samples of the batch), a layer that sees ``k * batch`` rows (windows folded into the batch
    dimension) splits at ``k * n_real``, and any other row count is an error rather than a silent misroute.
    """
    for layer in layers:
        layer.split, layer.batch = n_real, batch
    try:
        yield
    finally:
        for layer in layers:
            layer.split, layer.batch = None, None


def strip_aux_norm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with each :class:`AuxNorm` replaced by its main layer: the plain architecture."""
    out = copy.deepcopy(model)

    def strip(module: nn.Module) -> None:
        for name, child in list(module.named_children()):
            if isinstance(child, AuxNorm):
                setattr(module, name, child.main)
            else:
                strip(child)

    if isinstance(out, AuxNorm):
        return out.main
    strip(out)
    return out
