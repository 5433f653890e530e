"""Auxiliary normalization: a second copy of every norm layer, used by synthetic samples only.

Real and synthetic images have different statistics; sharing BatchNorm statistics between them hurts the real
domain. As in AdvProp (Xie et al., 2020) and the paper this package implements, each norm layer gets an auxiliary
copy: in training the first ``split`` samples of a batch (the real block, see :mod:`synthdiv.data.mixed`) go
through the main layer and the rest through the auxiliary one, so neither domain's samples ever touch the other's
statistics or affine parameters. In eval mode only the main layer is used, and :func:`strip_aux_norm` returns the
plain model (the layout timm would build) for export. Unlike timm's ``SplitBatchNorm2d``, which assumes equal splits,
the split point is set per batch with :func:`route`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator, Sequence

import torch
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["AuxNorm", "convert_aux_norm", "strip_aux_norm", "aux_layers", "route", "NORM_KINDS"]

NORM_KINDS: dict[str, tuple[type[nn.Module], ...]] = {
    "batchnorm": (nn.modules.batchnorm._BatchNorm,),
    "layernorm": (nn.LayerNorm,),
    "groupnorm": (nn.GroupNorm,),
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.split is None or self.split >= x.shape[0]:
            return self.main(x)
        if self.split <= 0:
            return self.aux(x)
        # split (views; its backward is one cat) rather than two slices (whose backward is two zero-filled copies)
        real, synthetic = x.split([self.split, x.shape[0] - self.split], dim=0)
        return torch.cat([self.main(real), self.aux(synthetic)], dim=0)

    def extra_repr(self) -> str:
        return "main: real samples (and eval), aux: synthetic samples"


def _replace(model: nn.Module, kinds: tuple[type[nn.Module], ...], make: type[nn.Module]) -> int:
    count = 0
    for name, child in list(model.named_children()):
        if isinstance(child, AuxNorm):
            continue
        if isinstance(child, kinds):
            setattr(model, name, make(child))
            count += 1
        else:
            count += _replace(child, kinds, make)
    return count


def convert_aux_norm(model: nn.Module, layers: Sequence[str] = ("batchnorm",)) -> nn.Module:
    """Give every norm layer of the kinds in ``layers`` an auxiliary copy, in place; returns ``model``.

    Args:
        model: Any torch model (timm CNNs, ViTs, ConvNeXts); subclasses such as timm's ``BatchNormAct2d`` and
            ``LayerNorm2d`` count as their base kind.
        layers: Any of ``"batchnorm"``, ``"layernorm"``, ``"groupnorm"``.

    Raises:
        ValueError: An unknown layer kind.
    """
    unknown = sorted(set(layers) - set(NORM_KINDS))
    if unknown:
        raise ValueError(f"unknown norm kind {unknown[0]!r}; expected {', '.join(NORM_KINDS)}")
    kinds = tuple(t for k in layers for t in NORM_KINDS[k])
    n = _replace(model, kinds, AuxNorm)
    if n == 0:
        logger.warning("aux norm: the model has no %s layers; nothing converted", "/".join(layers))
    else:
        logger.info("aux norm: %d norm layers have an auxiliary copy for synthetic samples", n)
    return model


def aux_layers(model: nn.Module) -> list[AuxNorm]:
    """The :class:`AuxNorm` layers of ``model`` (keep the list; :func:`route` sets their split point)."""
    return [m for m in model.modules() if isinstance(m, AuxNorm)]


@contextlib.contextmanager
def route(layers: Sequence[AuxNorm], n_real: int | None) -> Iterator[None]:
    """Within the block, the first ``n_real`` samples of each batch use the main norms, the rest the aux norms."""
    for layer in layers:
        layer.split = n_real
    try:
        yield
    finally:
        for layer in layers:
            layer.split = None


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
