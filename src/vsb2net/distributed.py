"""Data-parallel training under ``torchrun`` (torch.distributed: gloo on CPU, nccl on CUDA).

A process started by ``torchrun`` (or any launcher that sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``) joins the process group; every other process runs alone with a world of one.
Rank 0 is the only one that logs, validates and writes files; the other ranks train their shard
of every batch and follow rank 0's decisions (the validation score is broadcast so that all ranks
stop at the same epoch).
"""
from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass
from typing import NoReturn

import torch

from .errors import VsbError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    #: whether this process joined a process group (even a world of one under torchrun)
    active: bool = False
    #: whether we created the group, and so must destroy it
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = Dist()


def _env_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise VsbError(f"environment variable {name}={value!r} is not an integer; it is set by torchrun, "
                       "start the job through torchrun or unset it.") from None


def launched() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def from_env() -> Dist:
    """Rank and world of this process, without joining anything (cheap; safe before an error message)."""
    if not launched():
        return SINGLE
    rank, world = _env_int("RANK"), _env_int("WORLD_SIZE")
    local = _env_int("LOCAL_RANK") if "LOCAL_RANK" in os.environ else 0
    return Dist(rank=rank, world=world, local_rank=local)


def setup(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the process group when launched by torchrun; returns this rank's view and device.

    On CUDA each rank takes the GPU of its local rank, whatever index the configuration named,
    because ranks on one node must not share a GPU under nccl.
    """
    d = from_env()
    if not launched():
        return SINGLE, device
    import torch.distributed as tdist

    if d.world < 1 or not 0 <= d.rank < d.world:
        raise VsbError(f"RANK={d.rank} and WORLD_SIZE={d.world} do not describe a valid process group; "
                       "start the job through torchrun.")
    if device.type == "cuda":
        if d.local_rank >= torch.cuda.device_count():
            raise VsbError(f"local rank {d.local_rank} has no GPU: this node has {torch.cuda.device_count()}; "
                           "start at most that many processes per node (--nproc_per_node).")
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    if tdist.is_initialized():
        return Dist(d.rank, d.world, d.local_rank, active=True, owns_group=False), device
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        tdist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    except (RuntimeError, ValueError) as exc:
        raise VsbError(f"could not join the torch.distributed process group ({backend}, rank {d.rank} of "
                       f"{d.world}): {str(exc).splitlines()[0][:300]}. Check that every node reaches "
                       "the --rdzv-endpoint (or MASTER_ADDR:MASTER_PORT).") from None
    return Dist(d.rank, d.world, d.local_rank, active=True, owns_group=True), device


def leave_helper_rank() -> NoReturn:
    """End a rank other than 0 once its share is done (rank 0 writes every file).  Its interpreter's
    normal exit sometimes aborted in torch's C++ teardown after the process group was gone
    ("terminate called without an active exception", SIGABRT; 3 of 14 two-process runs), which
    made torchrun kill rank 0 too; skipping that teardown costs nothing, as there is nothing left to
    write."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def teardown(d: Dist) -> None:
    if d.owns_group:
        import torch.distributed as tdist

        if tdist.is_initialized():
            tdist.destroy_process_group()


def broadcast_float(d: Dist, value: float | None, device: torch.device) -> float:
    """Rank 0's ``value`` on every rank (nccl needs the tensor on this rank's GPU)."""
    if not d.active:
        assert value is not None, "a single process is rank 0, which has the value"
        return float(value)
    import torch.distributed as tdist

    t = torch.tensor([0.0 if value is None else float(value)], dtype=torch.float64, device=device)
    tdist.broadcast(t, src=0)
    return float(t.item())


def mean_over_ranks(d: Dist, values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average per-rank numbers (e.g. an epoch's loss terms) over the ranks."""
    if not d.active or d.world == 1 or not values:
        return values
    import torch.distributed as tdist

    keys = list(values)  # the same order on every rank: the same model builds the same terms
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    tdist.all_reduce(t)
    return {k: float(v) / d.world for k, v in zip(keys, t.tolist())}
