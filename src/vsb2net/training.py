"""Training loop shared by every torch hashing method.

Deterministic on one machine: the weights are initialised under ``torch.manual_seed(seed)`` and
each epoch's batch order is drawn from ``numpy.random.default_rng((seed, epoch))``, so a run
depends on its seed and data alone, and an epoch can be replayed without replaying the ones
before it.  That is what makes resuming exact: the state saved at the end of an epoch (weights
and buffers, optimizer moments, the torch random state, the validation history) plus the seed
determine everything that follows.

Under ``torchrun`` every rank draws the same permutation and takes every ``world``-th item of
each global batch, so the ranks together see exactly the batches a single process would see, and
DDP averages their gradients.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .config import TrainConfig
from .data.augment import augment_batch, mixup_batch
from .distributed import SINGLE, Dist, broadcast_float, mean_over_ranks
from .errors import VsbError
from .threads import use_cpu_threads

if TYPE_CHECKING:
    from .models.base import HashingMethod


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise VsbError(f"train.device = {name!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
    if device.type not in ("cpu", "cuda"):
        raise VsbError(f"train.device = {name!r}: vsb2net runs on cpu or cuda; use auto, cpu, cuda or cuda:N.")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VsbError(f"train.device = {name!r} but CUDA is not available here; use --device cpu or auto.")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise VsbError(f"train.device = {name!r} but this machine has {torch.cuda.device_count()} GPU(s) "
                       f"(cuda:0..cuda:{torch.cuda.device_count() - 1}).")
    return device


def seed_everything(seed: int, threads: int = 0) -> None:
    """Seeds, deterministic kernels and torch's CPU threads (``threads``; 0: :mod:`vsb2net.threads`'
    default, every usable core but one)."""
    # cuBLAS is deterministic only with a fixed workspace, which must be set before its first use
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    use_cpu_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    # deterministic mode also fills every new tensor with NaN to expose reads of uninitialised
    # memory; no result depends on it, and it was the largest single operator (aten::fill_) in a
    # torch profile of a VSB2-Net training step on CPU.  (The attribute is a property that the
    # module sets up by swapping its class at import, which torch's stubs do not show.)
    torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    #: epoch (1-based) with the best validation score, when a validation function was given
    best_epoch: int | None = None
    best_score: float | None = None
    seconds: float = 0.0
    #: epochs completed, and how many of them since the best validation score (early stopping)
    epochs_done: int = 0
    stale: int = 0


class _LossOf(nn.Module):
    """``training_loss`` as ``forward``: DDP synchronises gradients only for work done in forward."""

    def __init__(self, model: HashingMethod):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor, ctx, **kw):
        return self.model.training_loss(x, y, ctx, **kw)


def training_state(model: nn.Module, opt: torch.optim.Optimizer, result: TrainResult,
                   device: torch.device) -> dict[str, Any]:
    """Everything needed to continue after ``result.epochs_done`` epochs, as tensors and plain data
    (so that ``torch.load(weights_only=True)`` reads it back)."""
    state = {
        "epoch": result.epochs_done,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "history": result.history,
        "best_epoch": result.best_epoch,
        "best_score": result.best_score,
        "stale": result.stale,
        "seconds": result.seconds,
        "torch_rng": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def _restore(model: nn.Module, resume: dict[str, Any], device: torch.device) -> TrainResult:
    try:
        model.load_state_dict(resume["model"])
    except (RuntimeError, KeyError) as exc:
        raise VsbError(f"the saved training state does not fit this model: {str(exc).splitlines()[0][:300]}. "
                       "It was written by another model or version; start the run again without --resume.") from None
    torch.set_rng_state(resume["torch_rng"])
    if device.type == "cuda" and "cuda_rng" in resume:
        torch.cuda.set_rng_state(resume["cuda_rng"], device)
    return TrainResult(history=list(resume["history"]), best_epoch=resume["best_epoch"],
                       best_score=resume["best_score"], seconds=float(resume["seconds"]),
                       epochs_done=int(resume["epoch"]), stale=int(resume["stale"]))


def _augment_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed of an epoch's augmentation draws; rank 0 keeps the single-process stream, and every
    other rank gets one of its own so that the shards are not shifted in lockstep."""
    if rank == 0:
        return seed * 100003 + epoch
    return int(np.random.SeedSequence((seed, epoch, rank)).generate_state(1, np.uint64)[0] >> 1)


#: ``validate(model)``: the validation score (higher is better), or the score and named values
#: to record beside it in the history
Validate = Callable[["HashingMethod"], float | tuple[float, dict[str, float | None]]]


def _optimizer(model: nn.Module, cfg: TrainConfig, resume: dict[str, Any] | None) -> torch.optim.Optimizer:
    # fused: one kernel for all parameters instead of a dozen small ones per tensor; the same
    # update, supported on CPU and CUDA
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    if resume is not None:
        try:
            opt.load_state_dict(resume["optimizer"])
        except (ValueError, KeyError) as exc:
            raise VsbError(f"the saved optimizer state does not fit this model ({exc}); start the run again "
                           "without --resume.") from None
    return opt


def _distributed(model: HashingMethod, device: torch.device, dist: Dist) -> nn.Module | None:
    """The loss of ``model`` under DDP when running under torchrun, else None."""
    if not dist.active:
        return None
    from torch.nn.parallel import DistributedDataParallel as DDP

    # static_graph: every step uses the same parameters, and the ones a method never uses in its
    # loss (if any) are found once instead of by a graph traversal every step.
    return DDP(_LossOf(model), device_ids=[device.index] if device.type == "cuda" else None, static_graph=True)


def _batch_bounds(n: int, batch_size: int, world: int) -> list[tuple[int, int]]:
    """(start, end) of each global batch of an epoch."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < 2 * world:
        # a last batch of one item per rank joins the one before: BatchNorm cannot train on a
        # single value per channel (torchvision backbones reach 1x1 feature maps on small images)
        starts.pop()
    return list(zip(starts, starts[1:] + [n]))


@dataclass
class _Epochs:
    """What every epoch of one :func:`train` call works with."""

    model: HashingMethod
    #: the DDP-wrapped loss under torchrun, else None
    net: nn.Module | None
    opt: torch.optim.Optimizer
    x: torch.Tensor
    y: torch.Tensor
    loss_ctx: Any
    cfg: TrainConfig
    device: torch.device
    dist: Dist
    bounds: list[tuple[int, int]]
    n_classes: int
    bar: tqdm

    def run(self, epoch: int) -> dict[str, float]:
        """One pass over the training set; the mean of each loss term over its steps and the ranks."""
        cfg, dist = self.cfg, self.dist
        self.model.epoch_start(self.x, self.y, self.loss_ctx, self.device)
        (self.net or self.model).train()
        order = np.random.default_rng((cfg.seed, epoch)).permutation(len(self.x))
        aug_gen = torch.Generator().manual_seed(_augment_seed(cfg.seed, epoch, dist.rank))
        # its own stream, so that switching mixup on leaves the batches and shifts unchanged
        mix_rng = np.random.default_rng((cfg.seed, epoch, dist.rank, 7)) if cfg.mixup > 0 else None
        sums: dict[str, float] = {}
        ran = 0
        for lo, hi in self.bounds:
            batch = order[lo:hi]
            if len(batch) < dist.world:
                continue  # some rank's shard would be empty; every rank skips the same step
            terms = self._step(torch.from_numpy(batch[dist.rank::dist.world]), epoch, aug_gen, mix_rng)
            ran += 1
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            self.bar.update(1)
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in terms.items()}, refresh=False)
        return mean_over_ranks(dist, {k: v / max(ran, 1) for k, v in sums.items()}, self.device)

    def _step(self, idx: torch.Tensor, epoch: int, aug_gen: torch.Generator,
              mix_rng: np.random.Generator | None) -> dict[str, float]:
        """One gradient step on this rank's items ``idx`` of a batch; the loss terms."""
        model, device = self.model, self.device
        xb, yb = self.x[idx].to(device, non_blocking=True), self.y[idx].to(device, non_blocking=True)
        xb = augment_batch(xb, self.cfg.augment, aug_gen)
        if mix_rng is not None:
            xb, yb = mixup_batch(xb, yb, self.n_classes, self.cfg.mixup, mix_rng)
        kw = {"idx": idx} if model.index_batches else {}
        loss, terms = (self.net or model.training_loss)(xb, yb, self.loss_ctx, **kw)
        if not torch.isfinite(loss):
            raise VsbError(f"the loss became {float(loss.detach())} at epoch {epoch}; lower train.lr "
                           "or the loss weights and check the inputs for NaN/inf.")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return terms


def _score_epoch(validate: Validate, model: HashingMethod, epoch: int, result: TrainResult, dist: Dist,
                 device: torch.device) -> tuple[float, dict[str, float | None]]:
    """Validate on rank 0, share the score with every rank and keep the best epoch in ``result``;
    the score and the details to record beside it."""
    out = validate(model) if dist.is_main else None
    out, details = out if isinstance(out, tuple) else (out, {})
    score = broadcast_float(dist, out, device)
    if result.best_score is None or score > result.best_score:
        result.best_score, result.best_epoch, result.stale = score, epoch, 0
    else:
        result.stale += 1
    return score, details


def train(model: HashingMethod, x: torch.Tensor, y: torch.Tensor, loss_ctx, cfg: TrainConfig, *,
          epochs: int, device: torch.device, validate: Validate | None = None,
          patience: int | None = None, desc: str = "train",
          on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
          resume: dict[str, Any] | None = None, dist: Dist = SINGLE) -> TrainResult:
    """Train ``model`` with Adam for ``epochs`` epochs on (x, y).

    ``validate(model) -> score`` (higher is better), or ``-> (score, {name: value})`` to record
    more beside it, runs after each epoch when given (on rank 0; the score is broadcast); training
    stops after ``patience`` epochs without improvement and the best epoch is reported (the caller
    retrains for that many epochs: we keep no weights chosen by a score).  ``on_epoch_end(state)``
    gets :func:`training_state` after every epoch (rank 0 only); passing such a state back as
    ``resume`` continues from that epoch boundary.
    """
    if len(x) == 0:
        raise VsbError("the training set is empty: check the split (are all classes unseen?).")
    result = _restore(model, resume, device) if resume is not None else TrainResult()
    model.to(device)
    opt = _optimizer(model, cfg, resume)
    net = _distributed(model, device, dist)
    n_classes = int(y.shape[1]) if y.ndim == 2 else int(y.max()) + 1
    bounds = _batch_bounds(len(x), cfg.batch_size, dist.world)
    steps = len(bounds)
    start = time.perf_counter()
    seconds_before = result.seconds
    done = (validate is not None and patience is not None and result.stale >= patience)
    bar = tqdm(total=epochs * steps, initial=min(result.epochs_done, epochs) * steps, desc=desc,
               # None: tqdm shows the bar on a terminal only, so logs and CI output get no redraws
               disable=None if (cfg.progress and dist.is_main) else True, leave=False, dynamic_ncols=True)
    loop = _Epochs(model, net, opt, x, y, loss_ctx, cfg, device, dist, bounds, n_classes, bar)
    try:
        for epoch in range(result.epochs_done + 1, epochs + 1):
            if done:
                break
            record: dict[str, float | None] = {"epoch": epoch, **loop.run(epoch)}
            if validate is not None:
                score, details = _score_epoch(validate, model, epoch, result, dist, device)
                record["val_map"] = score
                record.update(details)
                bar.set_description(f"{desc} (val mAP {score:.3f}, best {result.best_score:.3f}@{result.best_epoch})")
            result.history.append(record)
            result.epochs_done = epoch
            result.seconds = seconds_before + time.perf_counter() - start
            if on_epoch_end is not None and dist.is_main:
                on_epoch_end(training_state(model, opt, result, device))
            done = validate is not None and patience is not None and result.stale >= patience
    finally:
        bar.close()
    result.seconds = seconds_before + time.perf_counter() - start
    return result
