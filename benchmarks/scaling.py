"""Figures to plan a large collection with (docs/SCALING.md): coding throughput per core, search
throughput as the collection grows, and a Milvus standalone server beside the flat index.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/scaling.py coding           # ~3 min
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/scaling.py search           # 1M and 10M codes, ~4 min
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/scaling.py milvus           # 1M codes on a local server

``coding``: a folder of --photos JPEG photos (--size, default 500x375, about ImageNet's mean size,
quality 90) is coded by quick runs (1 epoch: speed does not depend on training) of the cnn28
backbone (28x28 grey input) and of efficientnet-lite0 (64x64 and 224x224 colour input), on one
core (torch.set_num_threads(1)): JPEG decoding and resizing alone (vsb2net.data.images.read_images),
the network alone on decoded inputs, and ``vsb2net index build --images`` end to end (decode +
network + shard files + merge): CPU time per image as the difference between a build of all the
photos and one of 12 (what the command does once cancels out), wall-clock items/s from the build's
own summary line.

``search``: random 64-bit codes, N = --sizes (default 1M and 10M): build time, bytes per code and
k-NN (k=10) time per query on one thread for HammingIndex flat, faiss-ivf (its defaults: nlist =
sqrt(N), nprobe = nlist / 8) and faiss-mih (its defaults: nhash = bits/16, nflip 2), with recall@10
of the approximate ones (as distances); per-item costs let docs/SCALING.md extrapolate to 100M and 1B.

``milvus``: starts the Milvus 2.3 standalone server of the ``milvus`` package on 127.0.0.1 in a
temporary folder (or uses --milvus-uri), upserts --milvus-n random 64-bit codes (rows/s), and times k-NN (k=10) and
radius search for BIN_FLAT and BIN_IVF_FLAT beside HammingIndex flat on the same codes, checking
that the exact ones give the same distances; prints the server's resident memory and disk; stops it.

Timings are wall-clock on whatever machine runs this (the figures in docs/SCALING.md come from a
shared 2-core VM, so they are lower bounds of an idle core); the load average is printed.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

CLASSES = ["zebra", "horse", "cat", "dog", "bird", "fish"]


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _photos(root: Path, n: int, size: tuple[int, int]) -> list[Path]:
    """``n`` colour JPEGs, one sub-folder per class: smooth hue and stripes with some noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    files = []
    for i in range(n):
        c = i % len(CLASSES)
        hue = np.array([(c * 53) % 256, (c * 101 + 80) % 256, (c * 29 + 160) % 256], np.float32)
        stripes = np.sin((xx if c % 2 else yy) / (3 + c + i % 7) + i)[..., None]
        img = np.clip(hue * (0.6 + 0.4 * stripes) + rng.normal(0, 10, (h, w, 3)), 0, 255).astype(np.uint8)
        path = root / CLASSES[c] / f"{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, "RGB").save(path, quality=90)
        files.append(path)
    return files


def _best(fn, repeats: int = 3) -> tuple[float, float]:
    """The best (wall seconds, CPU seconds of this process) of ``repeats`` calls."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu


def coding(a: argparse.Namespace) -> None:
    import contextlib
    import io

    import torch

    from vsb2net.cli import main as cli
    from vsb2net.data.images import read_images
    from vsb2net.index.build import Coder
    from vsb2net.run import Run

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="vsb2net-scaling-"))
    w, h = a.size
    files = _photos(tmp / "photos", a.photos, (w, h))
    mb = sum(f.stat().st_size for f in files) / len(files) / 1e3
    small, n_small = tmp / "few", 12
    for f in files[:n_small]:
        (small / f.parent.name).mkdir(parents=True, exist_ok=True)
        (small / f.parent.name / f.name).write_bytes(f.read_bytes())
    print(f"{len(files)} JPEG photos {w}x{h}, {mb:.0f} kB each; one thread; load {_load()}")
    train = ["--epochs", "1", "--bits", "64", "--no-progress", "--out", str(tmp / "runs")]
    models = [("cnn28", ["run", "--max-per-class", "100", "--name", "cnn28", *train]),
              *[(f"efficientnet-lite0 {s}x{s}",
                 ["run", "--dataset", "image-folder", "--data-root", str(tmp / "photos"), "--unseen", "zebra",
                  "--set", f"data.image_size={s}", "--set", "model.backbone=efficientnet-lite0",
                  "--name", f"eff{s}", *train]) for s in a.eff_sizes]]
    print("images per second of one core's CPU time (process time; in brackets: per wall-clock second)")
    print(f"{'model (input)':<26} {'JPEG decode':>16} {'network':>16} {'index build':>16}")
    for label, args in models:
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli(args) == 0
        run = Run.load(tmp / "runs" / args[args.index("--name") + 1])
        sample = files[:a.sample]
        decode = _best(lambda: read_images(sample, run.in_shape), 2)  # noqa: B023
        x = read_images(sample, run.in_shape)
        coder = Coder(run, torch.device("cpu"))
        coder(x[:8])  # warm-up
        net = _best(lambda: coder(x))  # noqa: B023
        def build(folder: Path) -> tuple[float, float]:
            """(CPU seconds of the whole command, the wall-clock items/s of its summary line)."""
            out = io.StringIO()
            c0 = time.process_time()
            with contextlib.redirect_stdout(out):
                assert cli(["index", "build", str(run.path), "--images", str(folder), "--no-progress",  # noqa: B023
                            "--device", "cpu", "--shard-size", "256", "-o", str(folder) + ".vsbidx"]) == 0
            m = re.search(r"\(([\d.]+) items/s", out.getvalue())
            return time.process_time() - c0, float(m.group(1)) if m else float("nan")

        # the cost per image, without what the command does once (loading the run and its weights,
        # sampling pictures for the fit warning, merging): a build of all photos less one of a few
        small_cpu, _ = build(small)
        all_cpu, build_wall = build(tmp / "photos")
        build_cpu = (all_cpu - small_cpu) * len(files) / (len(files) - n_small)

        def cell(n: int, cpu: float, wall_rate: float) -> str:
            return f"{n / cpu:.0f} [{wall_rate:.0f}]"

        print(f"{label:<26} {cell(len(sample), decode[1], len(sample) / decode[0]):>16} "
              f"{cell(len(sample), net[1], len(sample) / net[0]):>16} {cell(len(files), build_cpu, build_wall):>16}",
              flush=True)
    print(f"load at end {_load()}")


def _codes(n: int, nbytes: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, nbytes), dtype=np.uint8)


def search(a: argparse.Namespace) -> None:
    os.environ["VSB2NET_SCAN_THREADS"] = "1"  # the flat kernel's threads: one, for a per-core figure
    import faiss

    from vsb2net.index import HammingIndex

    faiss.omp_set_num_threads(1)
    bits, k = 64, 10
    print(f"random {bits}-bit codes, k={k}, {a.queries} queries, one thread; load {_load()}")
    print("CPU time of this process (one thread); ms/query wall-clock in brackets")
    print(f"{'N':>11} {'backend':<10} {'build s':>8} {'B/code':>7} {'ms/query':>16} {'ns/code/query':>14} "
          f"{'recall@10':>9}")
    for n in a.sizes:
        db = _codes(n, bits // 8, 1)
        q = _codes(a.queries, bits // 8, 2)
        exact = None
        for backend, params in (("flat", {}), ("faiss-ivf", {}),
                                ("faiss-mih", {})):
            index = HammingIndex(bits, backend, **params)
            c0 = time.process_time()
            index.add(db)
            build_s = time.process_time() - c0
            size = len(index.backend.to_bytes()) / n
            index.search(q[:2], k)  # warm-up
            t0, c0 = time.perf_counter(), time.process_time()
            hits = index.search(q, k)
            per_q = (time.process_time() - c0) / len(q)
            wall_q = (time.perf_counter() - t0) / len(q)
            dists = np.stack([hh.distances for hh in hits])
            if exact is None:
                exact, recall = dists, 1.0
            else:
                recall = float(np.mean(np.sort(dists, axis=1) == exact))
            ms = f"{per_q * 1e3:.2f} [{wall_q * 1e3:.2f}]"
            print(f"{n:>11,} {backend:<10} {build_s:>8.1f} {size:>7.1f} {ms:>16} "
                  f"{per_q / n * 1e9:>14.3f} {recall:>9.3f}", flush=True)
            del index
    index_file(min(a.sizes))
    print(f"load at end {_load()}")


def index_file(n: int) -> None:
    """Bytes per item of an index file whose items are image files, and of it loaded in memory
    (ids, metadata: one small dict per item, the flat backend's codes)."""
    import gc

    from vsb2net.index import HammingIndex

    index = HammingIndex(64, "flat")
    index.add(_codes(n, 8, 1), metadata=[{"file": f"{CLASSES[i % 6]}/{i:08d}.jpg"} for i in range(n)])
    with tempfile.TemporaryDirectory() as tmp:
        path = index.save(Path(tmp) / "f.vsbidx")
        del index
        gc.collect()
        before = _rss_mib(os.getpid())
        t0 = time.perf_counter()
        loaded = HammingIndex.load(path)
        load_s = time.perf_counter() - t0
        grown = _rss_mib(os.getpid()) - before
        print(f"index file of {n:,} images (64-bit codes, metadata {{'file': 'zebra/00000001.jpg'}}): "
              f"{path.stat().st_size / n:.0f} B/item on disk, {grown * 2**20 / n:.0f} B/item in memory once loaded "
              f"(resident set growth), loaded in {load_s:.1f} s", flush=True)
        del loaded


def milvus(a: argparse.Namespace) -> None:
    import signal

    os.environ["VSB2NET_SCAN_THREADS"] = "1"
    # a timeout's SIGTERM must still stop the server (the finally below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from vsb2net.index import HammingIndex
    from vsb2net.index.milvus_local import LocalMilvus

    bits, k, n = 64, 10, a.milvus_n
    db, q = _codes(n, bits // 8, 1), _codes(a.queries, bits // 8, 2)
    # clustered queries: codes near stored ones, so that a small radius finds something
    half = a.queries // 2
    q[:half] = db[:half] ^ np.packbits(np.random.default_rng(3).random((half, bits)) < 0.05, axis=1)
    flat = HammingIndex(bits, "flat")
    flat.add(db)
    with tempfile.TemporaryDirectory(prefix="vsb2net-milvus-") as base:
        server = LocalMilvus(base) if a.milvus_uri is None else None
        uri = server.start().uri if server is not None else a.milvus_uri
        try:
            where = (f"Milvus standalone (milvus package) started in {server.started_s:.0f} s" if server is not None
                     else f"Milvus at {uri}")
            print(f"{where}; {n:,} random {bits}-bit codes, {a.queries} queries; load {_load()}")
            t0 = time.perf_counter()
            flat.search(q, k)
            flat_q = (time.perf_counter() - t0) / len(q)
            t0 = time.perf_counter()
            flat_r = flat.range_search(q, 6)
            flat_rq = (time.perf_counter() - t0) / len(q)
            print(f"flat (HammingIndex, 1 thread): k-NN {flat_q * 1e3:.2f} ms/query, radius 6 {flat_rq * 1e3:.2f} "
                  "ms/query")
            for index_type, params in (("BIN_FLAT", {}), ("BIN_IVF_FLAT", {"nlist": 1024, "nprobe": 16})):
                t0 = time.perf_counter()
                index = HammingIndex(bits, "milvus", uri=uri, collection=f"vsb2net_bench_{index_type.lower()}",
                                     overwrite=True,
                                     index_type=index_type, **params)
                index.add(db)
                add_s = time.perf_counter() - t0
                print(f"{index_type}: {n:,} rows upserted, flushed and indexed in {add_s:.0f} s", flush=True)
                index.search(q[:2], k)  # warm-up (loads the segments)
                t0 = time.perf_counter()
                hits = index.search(q, k)
                per_q = (time.perf_counter() - t0) / len(q)
                t0 = time.perf_counter()
                r = index.range_search(q, 6)
                per_rq = (time.perf_counter() - t0) / len(q)
                same = all(np.array_equal(s.distances, f.distances) for s, f in zip(hits, flat.search(q, k)))
                same_r = all(np.array_equal(s.distances, f.distances) for s, f in zip(r, flat_r))
                print(f"{index_type:<13} upsert+flush+index {n / add_s:,.0f} rows/s ({add_s:.0f} s); k-NN "
                      f"{per_q * 1e3:.2f} ms/query (same distances as flat: {same}); radius 6 {per_rq * 1e3:.2f} "
                      f"ms/query (same: {same_r})", flush=True)
                index.close()
            if server is not None:
                rss = _rss_mib(server.pid)
                disk = sum(f.stat().st_size for f in (Path(base) / "data").rglob("*") if f.is_file()) / 2**20
                print(f"server resident memory {rss:.0f} MiB; data on disk {disk:.0f} MiB; load at end {_load()}")
        finally:
            if server is not None:
                server.stop()


def _rss_mib(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("coding", "search", "milvus"))
    p.add_argument("--photos", type=int, default=600, help="coding: JPEG photos to code")
    p.add_argument("--size", type=int, nargs=2, default=(500, 375), metavar=("W", "H"), help="coding: photo size")
    p.add_argument("--sample", type=int, default=200, help="coding: photos decoded / coded in the timed passes")
    p.add_argument("--eff-sizes", type=int, nargs="*", default=[64, 224], help="coding: efficientnet input sides")
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000], help="search: collection sizes")
    p.add_argument("--queries", type=int, default=100, help="search, milvus: queries")
    p.add_argument("--milvus-n", type=int, default=1_000_000, help="milvus: codes in the collection")
    p.add_argument("--milvus-uri", help="milvus: a server of yours (http://host:19530; token from "
                                        "$VSB2NET_MILVUS_TOKEN) instead of a local one; it gets two collections "
                                        "vsb2net_bench_*, replaced if they exist")
    a = p.parse_args()
    {"coding": coding, "search": search, "milvus": milvus}[a.what](a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
