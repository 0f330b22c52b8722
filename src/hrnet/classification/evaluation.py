"""Top-1 / top-5 evaluation of a classifier over a dataset, sharded over ranks and summed exactly.

Every rank scores the samples ``rank, rank + world, ...`` and the integer counts are all-reduced, so
the result is identical on every rank and equal to a single-process run.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from hrnet.classification.datasets import collate_skip
from hrnet.classification.metrics import TopKMeter


@torch.no_grad()
def evaluate_classifier(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 64,
    workers: int = 0,
    device: torch.device | str | None = None,
    rank: int = 0,
    world_size: int = 1,
    amp: str = "none",
) -> dict[str, float]:
    """``{"top1", "top5", "count", "skipped"}``: accuracies as fractions in [0, 1] over the readable images.

    ``skipped`` counts images that could not be read (``bad_images="skip"``); they are not scored.
    ``amp`` ("none" | "bf16" | "fp16") runs the network under autocast; logits are scored in fp32.
    """
    dtypes = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if amp not in dtypes:
        raise ValueError(f"amp must be one of {sorted(dtypes)}, got {amp!r}")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    shard = Subset(dataset, range(rank, len(dataset), world_size)) if world_size > 1 else dataset
    loader = DataLoader(
        shard,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_skip,
        pin_memory=device.type == "cuda",
    )
    was_training = model.training
    model.eval()
    meter = TopKMeter((1, 5))
    try:
        for images, labels, bad in loader:
            meter.skipped += bad
            if images.numel() == 0:
                continue
            with torch.autocast(device.type, dtype=dtypes[amp], enabled=dtypes[amp] is not None):
                logits = model(images.to(device, non_blocking=True)).float()
            meter.update(logits, labels.to(device))
    finally:
        model.train(was_training)
    meter.all_reduce(device if device.type == "cuda" else torch.device("cpu"))
    return meter.compute()
