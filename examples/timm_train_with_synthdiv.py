"""Add a synthdiv run's images and auxiliary norms to an existing timm-style training loop.

    python examples/timm_train_with_synthdiv.py --run runs/quickstart --model resnet18 --steps 200

Your script keeps its model, optimizer, loss and schedule; synthdiv changes three things (marked ``# synthdiv``):
the loader (each batch is a real block then a synthetic block), the model (each norm layer gets an auxiliary copy
for the synthetic block) and the forward (``synthdiv.route`` tells the norms where the real block ends). The model
saved at the end is the plain timm architecture: the auxiliary norms are stripped.

Without aux norms, a plain torch dataset of the synthetic images also works: ``run.synthetic_dataset(transform)``.
The shards are also a standard WebDataset, so timm's own ``train.py --dataset wds/synthdiv --data-dir
<run>/shards`` trains on them directly (see docs/api.md).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from timm.data import create_transform, resolve_data_config

import synthdiv

logger = logging.getLogger("timm_train_with_synthdiv")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a synthdiv run directory (or its config file)")
    parser.add_argument("--model", default="resnet18", help="any timm model name")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64, help="real + synthetic images per step")
    parser.add_argument("--synthetic-fraction", type=float, default=0.5, help="synthetic share of each batch")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None, help="save the trained plain timm model here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> float:
    """Train for ``--steps`` steps; returns the last loss."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    run = synthdiv.open_run(args.run)  # synthdiv
    model = timm.create_model(args.model, num_classes=run.num_classes)
    synthdiv.convert_aux_norm(model)  # synthdiv: an auxiliary copy of every norm layer, for synthetic images
    aux = synthdiv.aux_layers(model)  # synthdiv
    model.to(device).train()

    data_config = resolve_data_config({"input_size": (3, args.img_size, args.img_size)}, model=model)
    transform = create_transform(**data_config, is_training=True)
    loader = run.mixed_loader(  # synthdiv: batch = real block, then synthetic block
        transform, batch_size=args.batch_size, steps=args.steps, synthetic_fraction=args.synthetic_fraction,
        num_workers=args.workers,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.steps)

    loss = torch.tensor(float("nan"))
    for step, batch in enumerate(loader):
        if batch["images"] is None:  # every image of this batch was unreadable (counted in batch["corrupt"])
            continue
        images, labels = batch["images"].to(device), batch["labels"].to(device)
        with synthdiv.route(aux, batch["n_real"]):  # synthdiv: the first n_real images use the main norms
            loss = F.cross_entropy(model(images), labels, label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % 50 == 0 or step == args.steps - 1:
            logger.info("step %d/%d loss %.4f (%d real + %d synthetic)", step + 1, args.steps, loss.item(),
                        batch["n_real"], len(labels) - batch["n_real"])

    if args.out is not None:
        plain = synthdiv.strip_aux_norm(model).cpu().eval()  # synthdiv: the stock timm architecture
        names = run.classes().column("name").to_pylist()
        timm.models.save_for_hf(plain, str(args.out), model_config={"label_names": names}, data_config=data_config)
        logger.info("saved %s (load with timm.create_model('local-dir:%s', pretrained=True))", args.out, args.out)
    return float(loss.item())


if __name__ == "__main__":
    main()
