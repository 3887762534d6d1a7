"""Training loop shared by every torch hashing method.

Deterministic on CPU: the weights are initialised under ``torch.manual_seed(seed)`` and each
epoch's batch order is drawn from ``numpy.random.default_rng((seed, epoch))``, so a run depends on
its seed and data alone (and an epoch can be replayed without replaying the ones before it).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .config import TrainConfig
from .data.augment import augment_batch
from .errors import VsbError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise VsbError(f"train.device = {name!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VsbError(f"train.device = {name!r} but CUDA is not available here; use --device cpu or auto.")
    return device


def seed_everything(seed: int, threads: int = 0) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    if threads > 0:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    #: epoch (1-based) with the best validation score, when a validation function was given
    best_epoch: int | None = None
    best_score: float | None = None
    seconds: float = 0.0


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_ctx, cfg: TrainConfig, *,
          epochs: int, device: torch.device, validate: Callable[[nn.Module], float] | None = None,
          patience: int | None = None, desc: str = "train",
          on_epoch_end: Callable[[int, nn.Module, torch.optim.Optimizer], None] | None = None) -> TrainResult:
    """Train ``model`` with Adam for ``epochs`` epochs on (x, y).

    ``validate(model) -> score`` (higher is better) runs after each epoch when given; training stops
    after ``patience`` epochs without improvement and the best epoch is reported (the caller
    retrains for that many epochs: we keep no weights chosen by a score).
    """
    if len(x) == 0:
        raise VsbError("the training set is empty: check the split (are all classes unseen?).")
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(x)
    steps = math.ceil(n / cfg.batch_size)
    result = TrainResult()
    stale = 0
    start = time.perf_counter()
    bar = tqdm(total=epochs * steps, desc=desc, disable=not cfg.progress, leave=False, dynamic_ncols=True)
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            order = np.random.default_rng((cfg.seed, epoch)).permutation(n)
            aug_gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
            sums: dict[str, float] = {}
            for s in range(steps):
                idx = torch.from_numpy(order[s * cfg.batch_size:(s + 1) * cfg.batch_size])
                xb, yb = x[idx].to(device, non_blocking=True), y[idx].to(device, non_blocking=True)
                xb = augment_batch(xb, cfg.augment, aug_gen)
                loss, terms = model.training_loss(xb, yb, loss_ctx)
                if not torch.isfinite(loss):
                    raise VsbError(f"the loss became {float(loss)} at epoch {epoch}; lower train.lr "
                                   "or the loss weights and check the inputs for NaN/inf.")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + v
                bar.update(1)
                bar.set_postfix({k: f"{v:.3f}" for k, v in terms.items()}, refresh=False)
            record = {"epoch": epoch, **{k: v / steps for k, v in sums.items()}}
            if validate is not None:
                score = float(validate(model))
                record["val_map"] = score
                if result.best_score is None or score > result.best_score:
                    result.best_score, result.best_epoch, stale = score, epoch, 0
                else:
                    stale += 1
                bar.set_description(f"{desc} (val mAP {score:.3f}, best {result.best_score:.3f}@{result.best_epoch})")
            result.history.append(record)
            if on_epoch_end is not None:
                on_epoch_end(epoch, model, opt)
            if validate is not None and patience is not None and stale >= patience:
                break
    finally:
        bar.close()
    result.seconds = time.perf_counter() - start
    return result


@torch.no_grad()
def encode(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, device: torch.device,
           batch_size: int = 1024) -> np.ndarray:
    """Apply ``fn`` (e.g. ``model.hash_images``) in batches; returns float32 (N, K)."""
    out = [fn(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)
