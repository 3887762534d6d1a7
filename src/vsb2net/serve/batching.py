"""Micro-batching of index searches: concurrent queries share one ``HammingIndex`` call.

Each query waits on an asyncio future; one worker task takes the first waiting query, gathers
those that arrive within ``window_s`` (at most ``max_batch``), and makes **one**
``index.search`` call with the largest k of the batch (each query then keeps its own first k),
or ``range_search`` calls per distinct radius (at most RANGE_CHUNK queries each).  The call runs
in a single dedicated thread, so the event loop keeps accepting requests meanwhile, and queries
that arrive during a call form the next batch at once: under load the batches fill up by
themselves.  The window is only waited while queries arrive together (the previous batch held
several, or more are already waiting), so a lone client pays no added latency.

Why: faiss splits one call's queries over its OpenMP threads (one per core), so a batch uses
every core while one-query calls, made one after the other, use one; and the per-call costs
(the hand-off to the index thread, HammingIndex's bookkeeping) are paid once per batch.  A batch
of one runs on a one-thread team (see ``_FaissThreads``).  ``benchmarks/serve_load.py`` measures
both ways; ``max_batch=1`` turns batching off.  Index calls are never concurrent, which also suits
backends whose clients are not thread-safe (Milvus).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import sys
from dataclasses import dataclass, field

import numpy as np

from vsb2net.index.hamming_index import HammingIndex
from vsb2net.index.hits import Hits

#: most queries per range_search call
RANGE_CHUNK = 8


@dataclass
class _Query:
    code: np.ndarray          # packed (bits/8,) uint8
    k: int                    # hits wanted (k-NN), or the most returned (radius)
    radius: int | None
    future: asyncio.Future = field(repr=False)
    #: the query's real-valued code (bits,): ties are ordered by it; None (hex codes): shuffled
    real: np.ndarray | None = None


class _FaissThreads:
    """faiss spreads a search over its queries with OpenMP.  A team wider than the batch gains
    nothing and waits at its barriers for threads that may be descheduled (on a busy machine a
    one-query search then takes tens of ms instead of well under one), so the index thread sizes
    the team to the batch.  OpenMP's thread count is per calling thread: this changes nothing for
    other threads."""

    def __init__(self) -> None:
        self.default: int | None = None

    def fit(self, n_queries: int) -> None:
        faiss = sys.modules.get("faiss")
        if faiss is None:
            return
        if self.default is None:
            self.default = max(1, int(faiss.omp_get_max_threads()))
        faiss.omp_set_num_threads(max(1, min(n_queries, self.default)))


async def cancel(worker: asyncio.Task | None) -> None:
    """Cancel a batcher's worker task and wait until it has stopped."""
    if worker is not None:
        worker.cancel()
        try:
            await worker
        except asyncio.CancelledError:
            pass


async def next_batch(queue: asyncio.Queue, last: int, window_s: float, max_batch: int) -> list:
    """The next batch: the first waiting entry and those that come within ``window_s`` (at most
    ``max_batch``).  The window is waited only while entries have been arriving together (the
    previous batch held several, or more wait already): a lone client pays no window, and under
    load the queue fills during each call anyway."""
    batch = [await queue.get()]
    if window_s and max_batch > 1 and (last > 1 or not queue.empty()):
        await asyncio.sleep(window_s)
    while len(batch) < max_batch and not queue.empty():
        batch.append(queue.get_nowait())
    return batch


class MicroBatcher:
    """``await batcher.search(code, k)`` / ``search(code, k, radius=r, real=u)``: one Hits, nearest
    first, with its tie groups counted; with ``real`` ties are ordered by it (asymmetric search)."""

    def __init__(self, index: HammingIndex, *, window_s: float = 0.002, max_batch: int = 64):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.index = index
        self.window_s = max(0.0, float(window_s))
        self.max_batch = int(max_batch)
        self._queue: asyncio.Queue[_Query] | None = None
        self._worker: asyncio.Task | None = None
        self._stopped = False
        self._faiss_threads = _FaissThreads()
        self._thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="vsb2net-index")
        #: (number of index calls, number of queries they answered), for /info and the tests
        self.calls = 0
        self.queries = 0

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker on the running event loop (idempotent)."""
        if self._worker is None or self._worker.done():
            queue: asyncio.Queue[_Query] = asyncio.Queue()
            self._queue = queue
            self._worker = asyncio.get_running_loop().create_task(self._run(queue), name="vsb2net-batcher")

    async def stop(self) -> None:
        """Stop the worker; queries still waiting get an error instead of waiting forever."""
        self._stopped = True
        await cancel(self._worker)
        self._worker = None
        while self._queue is not None and not self._queue.empty():
            q = self._queue.get_nowait()
            if not q.future.done():
                q.future.set_exception(RuntimeError("the server is shutting down"))
        self._thread.shutdown(wait=True)

    # -- queries ----------------------------------------------------------------------------------
    async def search(self, code: np.ndarray, k: int, radius: int | None = None,
                     real: np.ndarray | None = None) -> Hits:
        if self._stopped:
            raise RuntimeError("the server is shutting down")
        self.start()
        assert self._queue is not None, "start() made the queue"
        fut = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Query(np.asarray(code, np.uint8), int(k), radius, fut, real))
        return await fut

    async def _run(self, queue: asyncio.Queue[_Query]) -> None:
        loop = asyncio.get_running_loop()
        last = 1
        while True:
            batch = await next_batch(queue, last, self.window_s, self.max_batch)
            last = len(batch)
            batch = [q for q in batch if not q.future.done()]  # the client went away
            if not batch:
                continue
            try:
                results = await loop.run_in_executor(self._thread, self._answer, batch)
            except Exception as exc:  # noqa: BLE001  (handed to every waiting query)
                for q in batch:
                    if not q.future.done():
                        q.future.set_exception(exc)
                continue
            for q, res in zip(batch, results):
                if q.future.done():
                    continue
                if isinstance(res, BaseException):
                    q.future.set_exception(res)
                else:
                    q.future.set_result(res)

    def _answer(self, batch: list[_Query]) -> list[Hits | BaseException | None]:
        """In the index thread: one index call per group (k-NN; each radius), results in batch order
        (every slot is filled: None only types the list before that)."""
        out: list[Hits | BaseException | None] = [None] * len(batch)
        groups: dict[tuple[int | None, bool], list[int]] = {}
        for i, q in enumerate(batch):
            groups.setdefault((q.radius, q.real is None), []).append(i)
        for (radius, plain), group in groups.items():
            # a range search holds every item within the radius before it keeps the first k (up to
            # the whole index per query), so those go in small chunks to bound the memory
            step = len(group) if radius is None else RANGE_CHUNK
            for lo in range(0, len(group), step):
                members = group[lo:lo + step]
                codes = np.stack([batch[i].code for i in members])
                real = None if plain else np.stack([batch[i].real for i in members])  # type: ignore[misc]
                k = max(batch[i].k for i in members)
                self._faiss_threads.fit(len(members))
                try:
                    if radius is None:
                        found = self.index.search(codes, k, real=real, ties=True)
                    else:
                        found = self.index.range_search(codes, radius, k=k, real=real, ties=True)
                except Exception as exc:  # noqa: BLE001  (one call's failure is its queries' answer)
                    for i in members:
                        out[i] = exc
                    continue
                self.calls += 1
                self.queries += len(members)
                for i, hits in zip(members, found):
                    out[i] = hits.first(batch[i].k)
        return out


class CallBatcher:
    """``await batcher(item)``: items that arrive together go through ``fn(items) -> results`` in one
    call on ``executor`` (uploaded images through the model: one forward pass for the batch instead
    of one per request).  Same rule as :class:`MicroBatcher`: the window is waited only while items
    arrive together, so a lone client pays nothing."""

    def __init__(self, fn, executor: concurrent.futures.Executor, *, window_s: float = 0.002, max_batch: int = 32):
        self.fn, self.executor = fn, executor
        self.window_s, self.max_batch = max(0.0, float(window_s)), max(1, int(max_batch))
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        #: (number of calls, number of items they took), for /info and the tests
        self.calls = 0
        self.items = 0

    async def __call__(self, item):
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._run(self._queue), name="vsb2net-calls")
        assert self._queue is not None, "the worker made the queue"
        fut = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, fut))
        return await fut

    async def _run(self, queue: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        last = 1
        while True:
            batch = await next_batch(queue, last, self.window_s, self.max_batch)
            last = len(batch)
            batch = [(item, fut) for item, fut in batch if not fut.done()]
            if not batch:
                continue
            try:
                results = await loop.run_in_executor(self.executor, self.fn, [item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001  (handed to every waiting caller)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            self.calls += 1
            self.items += len(batch)
            for (_, fut), res in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(res)

    async def stop(self) -> None:
        await cancel(self._worker)
        self._worker = None
