"""How many CPU threads vsb2net's own work uses, and how they wait (docs/PERFORMANCE.md, "A busy
machine").

Two settings decide how training and encoding fare when something else runs on the machine:

* **OpenMP's wait policy: passive.**  Torch (and faiss) run their parallel loops on OpenMP
  threads, which by default spin for a while at every barrier.  Beside another busy process a
  spinning thread burns the time slice that the thread it waits for needs, so a 2-thread loop on
  2 cores shared with one other process stalls for whole scheduler slices.  Passive waiters
  sleep instead.  The variable is read once, when the OpenMP runtime loads (the first
  ``import torch``), so :func:`set_wait_policy` runs before any command imports torch; a value
  in the environment wins.
* **Torch's intra-op threads: the usable cores but one** (at least one).  The models of a run are
  small (a batch of 28x28 images through a few convolutions), so a second thread buys little
  even on an idle machine, while a machine with one other busy process has exactly one core
  left: a thread per core would make every parallel loop wait for a descheduled thread.
  ``train.threads`` (> 0) or ``OMP_NUM_THREADS`` in the environment override it.

``vsb2net serve`` uses one torch thread per model call instead (its pool runs calls side by side).
"""
from __future__ import annotations

import os

WAIT_POLICY = "PASSIVE"


def set_wait_policy() -> None:
    """OpenMP threads that wait sleep instead of spinning (unless the environment says otherwise);
    effective only before the OpenMP runtime loads."""
    os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """Torch's intra-op threads when nothing asks for a number: every usable core but one."""
    return max(1, usable_cores() - 1)


def use_cpu_threads(requested: int = 0) -> int:
    """Set torch's intra-op threads: ``requested`` when > 0, else OMP_NUM_THREADS when the
    environment sets it (torch read it already), else :func:`default_threads`.  Returns the number."""
    import torch

    if requested > 0:
        n = requested
    elif os.environ.get("OMP_NUM_THREADS", "").strip():
        return torch.get_num_threads()
    else:
        n = default_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
