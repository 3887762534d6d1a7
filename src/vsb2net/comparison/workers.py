"""Worker processes of the benchmark and the tuning: spawned (no forked copies of torch's thread
pools), each with its share of the CPU threads, and none outliving the command that started it
(a stopped ``make_results.py`` once left its workers training for the best part of an hour)."""
from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import torch

#: prctl(2) option: the signal this process gets when the thread that started it ends
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """On Linux the worker gets SIGTERM when its parent ends, however it ended (also ``kill -9``)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # no prctl (not Linux): an interrupted pool is still terminated below
        pass


def _start(threads: int, initializer: Callable[..., None] | None, initargs: tuple) -> None:
    _die_with_parent()
    torch.set_num_threads(threads)
    if initializer is not None:
        initializer(*initargs)


@contextlib.contextmanager
def worker_pool(jobs: int, initializer: Callable[..., None] | None = None,
                initargs: tuple[Any, ...] = ()) -> Iterator[ProcessPoolExecutor]:
    """``jobs`` spawned processes sharing this process's CPU threads, each started by
    ``initializer(*initargs)``.  When the block raises (an error, Ctrl-C, a SIGTERM turned into an
    exception), queued work is dropped and the running workers are terminated at once instead of
    being waited for."""
    threads = max(1, torch.get_num_threads() // jobs)
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
                               initargs=(threads, initializer, initargs))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        # the executor has no public way to stop a running task; its process table is the only handle
        for proc in list((getattr(pool, "_processes", None) or {}).values()):
            proc.terminate()
        raise
    pool.shutdown(wait=True)
