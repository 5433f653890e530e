"""The ``train`` and ``evaluate`` sections: the classifier, the real/synthetic mix, the protocols and the eval sets.

One ``train`` stage trains every variant in ``train.variants``: each variant is a set of overrides of the other
``train`` keys (e.g. ``{real: {synthetic_fraction: 0, aux_norm: none}, real+syn: {}}``), trained under
``train/<variant>/`` and exported to ``export/<variant>/``. Without ``variants`` the one variant is named ``main``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from synthdiv.config._base import ConfigPath, PathName, Section, path_name_problem

__all__ = ["TrainConfig", "EvaluateConfig", "OODSetConfig", "DEFAULT_VARIANT", "SHIFTS", "PROTOCOL_KEYS"]

DEFAULT_VARIANT = "main"
SHIFTS = ("edges", "inverted", "noise")
PROTOCOL_KEYS = ("low_data", "long_tail", "long_tail_alpha", "long_tail_max", "long_tail_min")
NormKind = Literal["batchnorm", "layernorm", "groupnorm", "rmsnorm"]
_VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class TrainConfig(Section):
    # options added after runs were made: they enter the train stage's fingerprint only when set, so upgrading
    # synthdiv does not make a finished train stage stale (synthdiv.core.status.fingerprint)
    fingerprint_optional: ClassVar[tuple[str, ...]] = (
        "synthetic_label_smoothing", "synthetic_weight", "finetune_real_epochs", "finetune_real_steps",
        "finetune_real_lr", "finetune_reinit_head")

    model: str = Field("resnet18", description="any timm model name")
    model_kwargs: dict[str, Any] = Field(default_factory=dict, description="extra timm.create_model arguments")
    img_size: int = Field(224, ge=8)
    epochs: int = Field(1, ge=0)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps (else epochs)")
    batch_size: int = Field(64, ge=1, description="global batch per optimizer step (all ranks, all micro-steps)")
    accum_steps: int = Field(1, ge=1, description="gradient accumulation micro-steps per optimizer step")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum")
    optimizer: Literal["adamw", "sgd"] = "adamw"
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="cosine floor as a fraction of lr")
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    synthetic_label_smoothing: float | None = Field(
        None, ge=0, lt=1, description="label smoothing of synthetic samples only (soft targets); None: label_smoothing"
    )
    ema_decay: float | None = Field(None, gt=0, lt=1, description="keep an EMA of the weights (exported if set)")
    amp: Literal["auto", "bf16", "fp16", "none"] = Field("auto", description="auto: bf16 or fp16 on GPU, off on CPU")
    channels_last: bool = Field(True, description="channels_last memory format on GPU (CPU BatchNorm is slower in it)")
    grad_clip: float | None = Field(None, gt=0)
    max_nonfinite_steps: int = Field(
        20, ge=0, description="steps with non-finite gradients are skipped; stop after this many in a row"
    )
    # the real / synthetic mix
    synthetic_fraction: float = Field(0.5, ge=0, le=1, description="share of each batch that is synthetic")
    synthetic_loss_weight: float = Field(1.0, ge=0, description="weight of synthetic samples in the loss")
    synthetic_weight: Literal["prob", "similarity", "margin"] | None = Field(
        None, description="scale each synthetic sample's loss by this scores.parquet column (clipped at 0)"
    )
    # bridged transfer: synthetic only for the schedule above, then real only for this one
    finetune_real_epochs: int = Field(
        0, ge=0, description="bridged transfer: after synthetic-only training, fine-tune on real for N epochs (0: off)"
    )
    finetune_real_steps: int | None = Field(None, ge=1, description="bridged transfer: fine-tune steps (else epochs)")
    finetune_real_lr: float | None = Field(None, gt=0, description="bridged transfer: fine-tune lr (None: lr)")
    finetune_reinit_head: bool = Field(False, description="bridged transfer: a new classifier head before fine-tuning")
    aux_norm: Literal["none", "aux"] = "aux"
    aux_norm_layers: Literal["auto"] | Annotated[list[NormKind], Field(min_length=1)] = Field(
        "auto", description="norm kinds that get an auxiliary copy for synthetic data; auto: every kind the model has"
    )
    # augmentation (timm)
    auto_augment: str | None = Field("rand-m9-mstd0.5", description="timm auto-augment spec, e.g. rand-m9-mstd0.5")
    hflip: float = Field(0.5, ge=0, le=1)
    eval_crop_pct: float = Field(0.875, gt=0, le=1, description="eval: resize to img_size / crop_pct, center crop")
    scale: tuple[float, float] = Field((0.08, 1.0), description="RandomResizedCrop scale range")
    mixup_alpha: float = Field(0.0, ge=0, description="mixup within each domain block (0 = off)")
    cutmix_alpha: float = Field(0.0, ge=0, description="cutmix within each domain block (0 = off)")
    # data
    real_root: ConfigPath | None = Field(None, description="ImageFolder or folder of WebDataset shards (else classes)")
    synthetic_root: ConfigPath | None = Field(None, description="folder of synthetic shards (else the run's shards/)")
    filters: list[PathName] = Field(
        default_factory=list, description="names of filters (built-in or under filters:) the synthetic images pass"
    )
    low_data: float | None = Field(None, gt=0, description="keep this fraction (<1) or N (>=1) real images per class")
    long_tail: bool = Field(False, description="subsample real data to an ImageNet-LT Pareto profile")
    long_tail_alpha: float = Field(6.0, gt=0, description="Pareto shape of the long-tail profile")
    long_tail_max: int | None = Field(None, ge=1, description="images of the largest class (else the largest count)")
    long_tail_min: int = Field(5, ge=1, description="images of the smallest class")
    num_workers: int = Field(2, ge=0)
    # bookkeeping
    checkpoint_every: int = Field(500, ge=1, description="save a checkpoint every N optimizer steps (and at the end)")
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(10, ge=1)
    val_batches: int = Field(
        16, ge=0, description="at each epoch's end, validate on this many batches of evaluate.test_root (0 = off)"
    )
    tensorboard: bool = False
    device: str = Field("auto", description="auto, cpu, cuda, cuda:N")
    torch_threads: int | None = Field(None, ge=1, description="torch CPU threads (None: default; 1 on a busy CPU)")
    variants: dict[str, dict[str, Any]] | None = Field(
        None, description="name -> overrides of the other train keys; each variant is trained and exported"
    )

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, value: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("expected at least one variant, or no variants key")
        for name, over in value.items():
            problem = path_name_problem(name, "variant name")  # it names train/<v>/, export/<v>/ and eval/<v>/
            if problem is not None:
                raise ValueError(problem)
            if not _VARIANT_NAME.match(name):
                raise ValueError(f"variant name {name!r} must be letters, digits, '_', '.', '+', '-'")
            if not isinstance(over, dict):
                raise ValueError(f"variant {name!r}: expected a mapping of train keys")
            if "variants" in over:
                raise ValueError(f"variant {name!r}: a variant cannot have variants")
            unknown = sorted(set(over) - set(cls.model_fields))
            if unknown:
                raise ValueError(f"variant {name!r}: unknown train key {unknown[0]!r}")
        return value

    @model_validator(mode="after")
    def _check_variants(self) -> TrainConfig:
        for name in self.variants or {}:
            try:
                self.variant(name)
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                loc = ".".join(str(p) for p in err["loc"])
                msg = err["msg"].removeprefix("Value error, ")
                raise ValueError(f"variant {name!r}: {loc}: {msg}") from None
        return self

    @model_validator(mode="after")
    def _check_bridge(self) -> TrainConfig:
        if self.bridged and self.synthetic_fraction == 0:
            raise ValueError("finetune_real_epochs/steps: bridged transfer trains on synthetic images first; "
                             "expected synthetic_fraction > 0 (its value is otherwise unused)")
        return self

    @property
    def bridged(self) -> bool:
        """Bridged transfer: synthetic only, then real only (``finetune_real_epochs`` or ``finetune_real_steps``)."""
        return bool(self.finetune_real_epochs or self.finetune_real_steps)

    def variant_names(self) -> list[str]:
        """The names of the variants this section trains, in order."""
        return list(self.variants) if self.variants else [DEFAULT_VARIANT]

    @property
    def synthetic_protocols(self) -> dict[str, dict[str, Any]]:
        """The real-set protocol keys of each variant that trains on synthetic images (what the plan tops up from)."""
        flat = {name: self.variant(name) for name in self.variant_names()}
        return {name: {k: getattr(v, k) for k in PROTOCOL_KEYS} for name, v in flat.items() if v.synthetic_fraction > 0}

    def variant(self, name: str) -> TrainConfig:
        """The flat config of one variant: this section with the variant's overrides and no ``variants``."""
        if not self.variants:
            if name != DEFAULT_VARIANT:
                raise KeyError(name)
            return self.model_copy(update={"variants": None})
        data = self.model_dump(exclude={"variants"})
        data.update(self.variants[name])
        return TrainConfig.model_validate(data)


class OODSetConfig(Section):
    """An out-of-domain evaluation set: an ImageFolder and how its folder names map to the run's classes."""

    name: PathName  # it names the result files eval/<variant>/<name>.json and .npz
    root: ConfigPath
    folders: Literal["wnid", "index", "name"] = Field(
        "wnid", description="class folders are named by WordNet id (Sketch, -R, -A), class index (V2) or class name"
    )
    subset: Literal["imagenet-r", "imagenet-a"] | None = Field(
        None, description="restrict logits to timm's 200-class subset (ImageNet-R / -A)"
    )
    max_images: int | None = Field(None, ge=1)


class EvaluateConfig(Section):
    batch_size: int = Field(128, ge=1)
    test_root: ConfigPath | None = Field(
        None, description="ImageFolder of in-domain test images (class folders by name or wnid)"
    )
    shifts: list[Literal["edges", "inverted", "noise"]] = Field(
        default_factory=list, description="shifted copies of the test set used as stand-in out-of-domain sets"
    )
    ood: list[OODSetConfig] = Field(default_factory=list)
    num_workers: int = Field(2, ge=0)
    max_images: int | None = Field(None, ge=1, description="evaluate at most this many images per set")
    many_shot: int = Field(100, ge=1, description="classes with more training images than this are many-shot")
    few_shot: int = Field(20, ge=1, description="classes with fewer training images than this are few-shot")
    device: str = "auto"
    torch_threads: int | None = Field(None, ge=1, description="torch CPU threads (None: torch's default)")

    @field_validator("ood")
    @classmethod
    def _distinct_names(cls, value: list[OODSetConfig]) -> list[OODSetConfig]:
        names = [ood.name for ood in value]
        for name in names:
            if names.count(name) > 1 or name == "test" or name.startswith("test-"):
                raise ValueError(f"set name {name!r} is taken: each set writes eval/<variant>/<name>.json, so each "
                                 "needs its own name (test and test-<shift> name the test sets)")
        return value
