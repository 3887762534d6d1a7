"""``vsb2net index build`` in shards: any number of processes, resumable, one merged index.

The items, in increasing id order, are cut into shards of ``shard_size`` (the last one shorter).
Shards do not depend on the number of processes, so a shard's codes are the same whoever codes
it (the same inputs in the same batches), and a build under ``torchrun --nproc-per-node N`` (or
on several machines sharing the output's folder) equals a single-process build item for item.

Each shard's ids and codes go to ``<index>.shards/shard-NNNNNN.npz``, written atomically (a
temporary file renamed into place): a shard file that exists is complete, and its existence is
the record that the shard is done.  ``plan.json`` beside them says which build they belong to
(model, items, shard size); a rerun of the same command codes only the shards that are missing,
whatever number of processes it runs with, and a different build refuses to mix with them.  The
ranks split the missing shards round-robin, wait for each other (torch.distributed barrier), and
rank 0 merges the shards in id order into the index (a file, or upserts into a Milvus collection
keyed by position, so an upsert repeated after a crash replaces rows instead of adding them),
then removes the shard folder.

Timing: the final summary (items, seconds, items/s, shards) covers the coding of this run.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vsb2net.errors import VsbError
from vsb2net.io import atomic_path, write_json

if TYPE_CHECKING:
    from .items import Items

#: items per shard: large enough that a shard's bookkeeping (one file) is negligible beside its
#: coding, small enough that a killed worker loses little (a few seconds of one core)
DEFAULT_SHARD_SIZE = 4096
PLAN = "plan.json"
PLAN_FORMAT = "vsb2net-index-shards"
SHARD_NAME = re.compile(r"^shard-(\d{6,})\.npz$")
#: seconds between redraws of rank 0's progress bar (each one lists the shard folder)
REFRESH_S = 1.0


def shard_dir(out: Path) -> Path:
    return out.with_name(out.name + ".shards")


def _shard_path(folder: Path, s: int) -> Path:
    return folder / f"shard-{s:06d}.npz"


@dataclass
class Summary:
    """What a build did: items and shards in all, those coded by this run, and how long it took."""

    items: int
    shards: int
    coded_items: int
    coded_shards: int
    seconds: float
    processes: int

    @property
    def reused_shards(self) -> int:
        return self.shards - self.coded_shards

    def line(self) -> str:
        rate = self.coded_items / self.seconds if self.seconds > 0 else float("inf")
        reused = f", {self.reused_shards} reused from an earlier run" if self.reused_shards else ""
        procs = f"{self.processes} process{'es' if self.processes != 1 else ''}"
        return (f"coded {self.coded_items} of {self.items} items in {self.seconds:.1f} s ({rate:.0f} items/s, "
                f"{procs}); {self.shards} shard{'s' if self.shards != 1 else ''}{reused}")


class Coder:
    """Packed codes of model inputs with the run's image branch on ``device`` (the batching of
    :func:`vsb2net.models.base.encode`, so that a shard codes the same wherever it runs)."""

    def __init__(self, run: Any, device: Any):
        import torch

        self.torch = torch
        self.device = device
        self.model = run.model.to(device)
        self.model.eval()

    def __call__(self, inputs: Any) -> np.ndarray:
        from vsb2net.codes import pack_codes
        from vsb2net.models import images_to_tensor
        from vsb2net.models.base import encode

        x = inputs if isinstance(inputs, self.torch.Tensor) else images_to_tensor(inputs)
        with self.torch.inference_mode():
            return pack_codes(encode(self.model.hash_images, x, self.device))


class ShardPlan:
    """The shards of one build: which items each holds, which are done, reading and writing them."""

    def __init__(self, folder: Path, items: Items, order: np.ndarray, shard_size: int, key: dict):
        self.folder = folder
        self.items = items
        self.order = order  # rows of ``items`` in increasing id order
        self.size = shard_size
        self.count = len(order)
        self.n = max(1, -(-self.count // shard_size))
        self.key = key

    def rows(self, s: int) -> np.ndarray:
        return self.order[s * self.size:(s + 1) * self.size]

    def done(self) -> set[int]:
        found = set()
        with os.scandir(self.folder) as entries:
            for e in entries:
                m = SHARD_NAME.match(e.name)
                if m and int(m.group(1)) < self.n:
                    found.add(int(m.group(1)))
        return found

    def items_in(self, shards: set[int] | list[int]) -> int:
        last = self.n - 1
        return sum(self.count - last * self.size if s == last else self.size for s in shards)

    # -- the plan file --------------------------------------------------------------------------
    def prepare(self) -> None:
        """Rank 0, before anyone codes: the folder, its plan (or a check that it is this build's),
        and no temporary file left by a killed writer."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / PLAN
        if path.is_file():
            try:
                have = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                have = None
            if not isinstance(have, dict) or {k: have.get(k) for k in self.key} != self.key:
                raise VsbError(f"{self.folder} holds the shards of another build (other model, items or shard size); "
                               "finish that build with its own command, or delete the folder to start this one.")
        else:
            write_json(path, {**self.key, "shards": self.n})
        for stale in self.folder.glob(".shard-*.tmp"):
            stale.unlink(missing_ok=True)

    def note(self, **entries: Any) -> None:
        """Record something about the build in the plan (rank 0), e.g. the Milvus collection it made."""
        path = self.folder / PLAN
        plan = json.loads(path.read_text(encoding="utf-8"))
        write_json(path, {**plan, **entries})

    def noted(self, name: str) -> Any:
        return json.loads((self.folder / PLAN).read_text(encoding="utf-8")).get(name)

    # -- shards ---------------------------------------------------------------------------------
    def write(self, s: int, codes: np.ndarray) -> None:
        ids = self.items.ids[self.rows(s)]
        with atomic_path(_shard_path(self.folder, s)) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, ids=ids, codes=codes)

    def read(self, s: int, bits: int) -> np.ndarray:
        path = _shard_path(self.folder, s)
        want = self.items.ids[self.rows(s)]
        try:
            with np.load(path, allow_pickle=False) as z:
                ids, codes = z["ids"], z["codes"]
        except (OSError, ValueError, KeyError) as exc:
            raise VsbError(f"shard {path} cannot be read ({str(exc)[:200]}); delete it and run the same command "
                           "again to code it anew.") from None
        if not np.array_equal(ids, want) or codes.shape != (len(want), bits // 8) or codes.dtype != np.uint8:
            raise VsbError(f"shard {path} does not hold the items this build puts there; delete it and run the same "
                           "command again to code it anew.")
        return codes

    def codes(self, bits: int) -> Iterator[np.ndarray]:
        for s in range(self.n):
            yield self.read(s, bits)


def _barrier(dist: Any) -> None:
    if dist.active and dist.world > 1:
        import torch.distributed as tdist

        tdist.barrier()


def _progress(enabled: bool, total: int, initial: int):
    from tqdm.auto import tqdm

    # None: a bar on a terminal only, so logs and CI output get no redraws
    return tqdm(total=total, initial=initial, desc="coding", unit="item", disable=None if enabled else True,
                leave=False, dynamic_ncols=True, file=sys.stderr)


def code_shards(plan: ShardPlan, coder: Coder, dist: Any, progress: bool) -> Summary:
    """Code every missing shard, this rank's share of them; every rank returns the same summary."""
    if dist.is_main:
        plan.prepare()
    _barrier(dist)  # the plan exists and no writer is left over: now every rank sees the same done set
    done = plan.done()
    todo = [s for s in range(plan.n) if s not in done]
    mine = todo[dist.rank::dist.world]
    t0 = time.perf_counter()
    bar = _progress(progress and dist.is_main, plan.count, plan.items_in(done))
    shown, last = plan.items_in(done), time.perf_counter()
    try:
        for s in mine:
            plan.write(s, coder(plan.items.inputs(plan.rows(s))))  # type: ignore[misc]
            now = time.perf_counter()
            if not bar.disable and now - last >= REFRESH_S:
                present = plan.items_in(plan.done())
                bar.update(present - shown)
                shown, last = present, now
        _barrier(dist)  # every shard is written
    finally:
        bar.close()
    return Summary(plan.count, plan.n, plan.items_in(todo), len(todo), time.perf_counter() - t0, dist.world)


def build(run: Any, items: Items, out: Path, backend: str, params: dict, *, shard_size: int = DEFAULT_SHARD_SIZE,
          device: str = "auto", progress: bool = True) -> tuple[Any, Summary | None]:
    """Code ``items`` with ``run``'s model (in shards, over the torchrun ranks if launched by one) and
    write the index to ``out``.  Returns (the saved and closed index, the coding summary) on rank 0,
    and (None, summary) on the other ranks, which have nothing left to do."""
    from vsb2net import distributed
    from vsb2net.training import resolve_device

    from .hamming_index import HammingIndex

    dist, dev = distributed.setup(resolve_device(device))
    info: dict = {"source": items.source, **({"warnings": items.warnings} if items.warnings else {})}
    identity = run.identity()
    summary = None
    folder = shard_dir(out)
    try:
        order = np.argsort(items.ids, kind="stable")
        if items.codes is not None:  # a codes file: nothing to code, rank 0 indexes it
            if not dist.is_main:
                return None, None
            codes_iter: Any = iter([items.codes[order]])
            plan = None
        else:
            key = {"format": PLAN_FORMAT, "model": identity["fingerprint"], "bits": run.bits,
                   "source": json.loads(json.dumps(items.source, default=str)), "count": len(order),
                   "ids_sha256": _sha256(items.ids[order]), "shard_size": int(shard_size)}
            plan = ShardPlan(folder, items, order, int(shard_size), key)
            summary = code_shards(plan, Coder(run, dev), dist, progress)
            if not dist.is_main:
                return None, summary
            codes_iter = plan.codes(run.bits)
        params = dict(params)
        if backend == "milvus" and plan is not None and plan.noted("milvus") == [params["uri"], params["collection"]]:
            # this build made the collection before it was stopped: upsert into it again (rows are
            # keyed by position, so nothing is added twice)
            params.pop("overwrite", None)
            params["_existing"] = True
        index = HammingIndex(run.bits, backend, model=identity, info=info, **params)
        try:
            if backend == "milvus" and plan is not None:
                plan.note(milvus=[params["uri"], params["collection"]])
            # added in id order, so that ties (broken by position inside the index) are broken by id
            codes = np.concatenate(list(codes_iter)) if len(order) else np.zeros((0, run.bits // 8), np.uint8)
            index.add(codes, ids=items.ids[order], metadata=[items.metadata[i] for i in order])
            index.save(out)
        finally:
            index.close()
        if plan is not None:
            shutil.rmtree(folder, ignore_errors=True)
        return index, summary
    finally:
        if dist.active and dist.is_main:
            distributed.teardown(dist)


def _sha256(ids: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(ids, dtype="<i8").tobytes()).hexdigest()
