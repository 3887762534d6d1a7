"""Load test of `vsb2net serve` on loopback: queries/s and latency at 1, 8 and 32 concurrent clients.

    .venv/bin/python benchmarks/serve_load.py                  # 10 s per cell, 1,000,000 codes
    .venv/bin/python benchmarks/serve_load.py --seconds 2      # a quick look
    .venv/bin/python benchmarks/serve_load.py --run RUN_DIR    # another run (codes of its length)
    .venv/bin/python benchmarks/serve_load.py --unbatched      # also 32 clients with batching off

What it does:

1. The run: --run, or a tiny 64-bit VSB2-Net run (Animal-MNIST, 40 images per class, 1 epoch,
   GloVe class vectors, so text queries work) trained once and cached under --cache-dir (default
   <tmp>/vsb2net-serve-load; retrained when the model code no longer loads it).
2. The index: --database random uniform codes of the run's length in an index of --backend
   (default: the default backend, ``flat``) made for the run's model, cached beside it (keyed by
   the model's fingerprint, size and seed).
3. Batched against unbatched index calls, in this process: one ``HammingIndex.search`` call with
   32 queries against 32 calls with one query each (k = 10, tie groups counted: the server's call
   for a code query),
   for a faiss backend the latter with faiss's default OpenMP team and with a one-thread team (see
   ``batched_vs_unbatched``), under OMP_WAIT_POLICY=PASSIVE like the server (set it in the
   environment to measure another policy).
4. The server: ``vsb2net serve RUN INDEX --port 0`` in a subprocess.  For each query kind the run
   supports (code, class, image, text) and each client count, that many threads send requests for
   --seconds over keep-alive connections (http.client), each waiting for its answer before it
   sends the next (k = 10).  Codes are random; class names cycle through the run's classes and a
   few other words; images cycle through 16 of the dataset's pictures (PNG uploads); texts through
   a few phrases.  queries/s counts answered requests; p50/p99 are request latencies; errors are
   non-200 answers and failed connections; "per call" is the mean number of queries the server
   answered with one index call (its micro-batches, from GET /info).

The clients run on the same machine as the server and compete with it for the CPU, so the figures
are a floor of what the server does for remote clients.
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np

# as `vsb2net serve` sets it (src/vsb2net/serve/cli.py), for the index-call timing done here;
# read when faiss loads
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from vsb2net.errors import VsbError  # noqa: E402
from vsb2net.serve.client import Client  # noqa: E402

CLIENTS = (1, 8, 32)
CLASS_WORDS = ["wolf", "tiger", "striped horse", "lion", "big cat", "farm animal"]
TEXTS = ["a striped horse", "an animal with a long neck", "a small pet that purrs", "a large grey animal",
         "a bird with wings", "a woolly farm animal"]


# ----------------------------------------------------------------------------- run and index

def tiny_run(cache: Path, bits: int) -> Path:
    from vsb2net.cli import main
    from vsb2net.run import CHECKPOINT, Run

    run = cache / f"tiny_{bits}bits"
    if (run / CHECKPOINT).is_file():
        try:
            Run.load(run)
            return run
        except VsbError as exc:
            print(f"cached run {run} does not load any more ({exc}); training it again", flush=True)
    print(f"training a tiny {bits}-bit run in {run} ...", flush=True)
    t0 = time.perf_counter()
    import shutil

    shutil.rmtree(run, ignore_errors=True)
    code = main(["train", "--max-per-class", "40", "--epochs", "1", "--bits", str(bits), "--no-progress",
                 "--set", "model.feature_dim=32", "--set", "data.class_vectors=glove",
                 "--out", str(cache), "--name", run.name])
    if code != 0:
        raise SystemExit(f"training the tiny run failed (exit {code})")
    print(f"  trained in {time.perf_counter() - t0:.0f} s", flush=True)
    return run


def random_index(run, cache: Path, n: int, seed: int, backend: str) -> Path:
    from vsb2net.index import HammingIndex

    fingerprint = run.identity()["fingerprint"]
    path = cache / f"random-{fingerprint}-{run.bits}bits-{n}-seed{seed}.{backend}.vsbidx"
    if path.is_file():
        return path
    print(f"building a {backend} index of {n:,} random {run.bits}-bit codes in {path} ...", flush=True)
    t0 = time.perf_counter()
    codes = np.random.default_rng(seed).integers(0, 256, (n, run.bits // 8), dtype=np.uint8)
    index = HammingIndex(run.bits, backend, model=run.identity(),
                         info={"source": {"kind": "codes", "file": f"random uniform, seed {seed}"}})
    index.add(codes)
    index.save(path)
    print(f"  built in {time.perf_counter() - t0:.1f} s", flush=True)
    return path


def batched_vs_unbatched(index_path: Path, bits: int, queries: int = 32, k: int = 10, rounds: int = 5) -> dict:
    """Median seconds of one search call with ``queries`` queries and of ``queries`` one-query calls.

    faiss runs a search on an OpenMP team (default: one thread per core) and splits it by query.
    "one call" uses the default team; the one-query calls run once with the default team (what a
    plain loop over ``HammingIndex.search`` does) and once with a team of one thread (what the
    server's index thread does for a batch of one).
    """
    import faiss

    from vsb2net.index import HammingIndex

    index = HammingIndex.load(index_path)
    rng = np.random.default_rng(1)
    team = faiss.omp_get_max_threads()
    uses_faiss = index.backend_name.startswith("faiss")
    times: dict[str, list[float]] = {"one_call_s": [], "many_calls_s": []}
    if uses_faiss:
        times["many_calls_1thread_s"] = []
    index.search(rng.integers(0, 256, (queries, bits // 8), dtype=np.uint8), k, ties=True)  # warm-up
    for _ in range(rounds):
        q = rng.integers(0, 256, (queries, bits // 8), dtype=np.uint8)
        t0 = time.perf_counter()
        index.search(q, k, ties=True)
        times["one_call_s"].append(time.perf_counter() - t0)
        for key, threads in (("many_calls_s", team), ("many_calls_1thread_s", 1))[:2 if uses_faiss else 1]:
            faiss.omp_set_num_threads(threads)
            t0 = time.perf_counter()
            for i in range(queries):
                index.search(q[i:i + 1], k, ties=True)
            times[key].append(time.perf_counter() - t0)
            faiss.omp_set_num_threads(team)
    index.close()
    return {"queries": queries, "count": len(index), "threads": team if uses_faiss else None,
            "backend": index.backend_name,
            **{key: float(np.median(v)) for key, v in times.items()}}


# ----------------------------------------------------------------------------- requests

def request_sets(run, bits: int, k: int) -> dict[str, list[tuple[str, str, bytes | None, dict]]]:
    """Per query kind, a list of (method, path, body, headers) to cycle through."""
    from PIL import Image

    rng = np.random.default_rng(2)
    sets = {"code": [("GET", f"/search/code?hex={rng.integers(0, 256, bits // 8, dtype=np.uint8).tobytes().hex()}"
                             f"&k={k}", None, {}) for _ in range(256)]}
    names = list(run.class_names) + CLASS_WORDS
    sets["class"] = [("GET", f"/search/class?name={quote(n)}&k={k}", None, {}) for n in names]
    sets["text"] = [("GET", f"/search/text?q={quote(t)}&k={k}", None, {}) for t in TEXTS]
    try:
        from vsb2net.pipeline import prepare

        x = prepare(run.cfg).dataset.x
        uploads = []
        for i in np.random.default_rng(3).choice(len(x), 16, replace=False):
            buf = io.BytesIO()
            Image.fromarray(np.asarray(x[i])).save(buf, format="PNG")
            body, headers = Client("http://127.0.0.1").upload_request(buf.getvalue(), f"item{i}.png", k=k)
            uploads.append(("POST", "/search/image", body, headers))
        sets["image"] = uploads
    except (VsbError, OSError, ValueError) as exc:
        print(f"no image queries: the run's dataset cannot be loaded here ({exc})", flush=True)
    return sets


class Worker(threading.Thread):
    """One client: sends its requests one after the other on a keep-alive connection until stopped."""

    def __init__(self, url: str, requests: list, start_at: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.client = Client(url)
        self.requests, self.i, self.stop = requests, start_at, stop
        self.latencies: list[float] = []
        self.errors = 0
        self.first_error = ""

    def run(self) -> None:
        while not self.stop.is_set():
            method, path, body, headers = self.requests[self.i % len(self.requests)]
            self.i += 1
            t0 = time.perf_counter()
            try:
                status, _, data = self.client.request(method, path, body=body, headers=headers)
            except (OSError, http.client.HTTPException) as exc:
                self.errors += 1
                self.first_error = self.first_error or repr(exc)
                continue
            if status == 200:
                self.latencies.append(time.perf_counter() - t0)
            else:
                self.errors += 1
                self.first_error = self.first_error or f"{status} {data[:200]!r}"
        self.client.close()


def load_cell(url: str, requests: list, clients: int, seconds: float) -> dict:
    stop = threading.Event()
    threads = [Worker(url, requests, j * 7, stop) for j in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(120)
    elapsed = time.perf_counter() - t0
    lat = np.array([v for t in threads for v in t.latencies])
    errors = sum(t.errors for t in threads)
    first = next((t.first_error for t in threads if t.first_error), "")
    return {"clients": clients, "qps": len(lat) / elapsed, "n": int(len(lat)),
            "p50_ms": float(np.percentile(lat, 50) * 1000) if len(lat) else float("nan"),
            "p99_ms": float(np.percentile(lat, 99) * 1000) if len(lat) else float("nan"),
            "errors": errors, "first_error": first}


def warm_up(url: str, requests: list) -> None:
    """Each request once (the server caches class and text codes, as it would in use)."""
    client = Client(url, timeout=120)
    for method, path, body, headers in requests[:32]:
        client.request(method, path, body=body, headers=headers)
    client.close()


# ----------------------------------------------------------------------------- the server

class Server:
    def __init__(self, run: Path, index: Path, extra: list[str], log: Path):
        env = dict(os.environ)
        env.pop("VSB2NET_TOKEN", None)  # loopback: no token
        self.log = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "vsb2net", "serve", str(run), str(index), "--port", "0",
                                      "--log-level", "warning", *extra],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        line = self.proc.stdout.readline()
        if " on http://" not in line:
            self.stop()
            raise SystemExit(f"the server did not start; its log: {log}\n{Path(log).read_text()[-2000:]}")
        self.url = line.split(" on ", 1)[1].split()[0].rstrip("/")
        print(line.strip(), flush=True)

    def info(self) -> dict:
        client = Client(self.url)
        status, data = client.json("GET", "/info")
        client.close()
        return data

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def run_cells(server: Server, sets: dict, kinds: list[str], clients: tuple[int, ...], seconds: float,
              label: str = "") -> list[dict]:
    rows = []
    for kind in kinds:
        warm_up(server.url, sets[kind])
        for c in clients:
            before = server.info()["batching"]
            row = {"kind": kind + label, **load_cell(server.url, sets[kind], c, seconds)}
            after = server.info()["batching"]
            calls = after["index_calls"] - before["index_calls"]
            row["queries_per_call"] = (after["queries"] - before["queries"]) / calls if calls else float("nan")
            rows.append(row)
            print(f"  {row['clients']:>7d}  {row['kind']:<16s} {row['qps']:>9.1f}  {row['p50_ms']:>7.1f}  "
                  f"{row['p99_ms']:>7.1f}  {row['errors']:>6d}  {row['queries_per_call']:>8.1f}"
                  + (f"   first error: {row['first_error']}" if row["errors"] else ""), flush=True)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", metavar="RUN_DIR", help="a trained run (default: a tiny 64-bit run, trained once)")
    p.add_argument("--bits", type=int, default=64, help="code length of the tiny run (default 64)")
    p.add_argument("--database", type=int, default=1_000_000, help="random codes in the index (default 1,000,000)")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds per cell (default 10)")
    p.add_argument("--clients", default=",".join(map(str, CLIENTS)), help="client counts (default 1,8,32)")
    p.add_argument("--kinds", default="code,class,image,text", help="query kinds (default all the run supports)")
    p.add_argument("-k", type=int, default=10, help="hits per query (default 10)")
    p.add_argument("--unbatched", action="store_true",
                   help="also run the largest client count against a server with batching off (--max-batch 1)")
    p.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "vsb2net-serve-load"),
                   help="where the tiny run and the index are kept between runs (default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default=None, help="index backend (default: the default backend, flat)")
    p.add_argument("--server-args", default="", help="more options for `vsb2net serve`, e.g. '--max-batch 8'")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args()
    clients = tuple(int(c) for c in args.clients.split(","))
    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)

    from vsb2net.run import Run

    run_dir = Path(args.run) if args.run else tiny_run(cache, args.bits)
    run = Run.load(run_dir)
    from vsb2net.index import DEFAULT_BACKEND

    index_path = random_index(run, cache, args.database, args.seed, args.backend or DEFAULT_BACKEND)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; run {run_dir} ({run.bits} bits), index {index_path.name}", flush=True)

    timing = batched_vs_unbatched(index_path, run.bits)
    n, one = timing["queries"], timing["one_call_s"]
    team = (f"faiss team: {timing['threads']} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
            if timing["threads"] else "one thread per core for a batch, one for a single query")
    print(f"\nindex calls, {timing['backend']}, {timing['count']:,} codes of {run.bits} bits, k = 10 with tie groups, "
          "median of 5 "
          f"({team}):")
    print(f"  one call with {n} queries:                  {one * 1000:8.1f} ms")
    print(f"  {n} calls with 1 query each:                {timing['many_calls_s'] * 1000:8.1f} ms   "
          f"({timing['many_calls_s'] / one:.1f}x the batched time)")
    if "many_calls_1thread_s" in timing:
        print(f"  {n} calls with 1 query each, 1-thread team: {timing['many_calls_1thread_s'] * 1000:8.1f} ms   "
              f"({timing['many_calls_1thread_s'] / one:.1f}x the batched time)")
    print(flush=True)

    sets = request_sets(run, run.bits, args.k)
    log = cache / "server.log"
    server = Server(run_dir, index_path, args.server_args.split(), log)
    rows = []
    try:
        supported = server.info()["queries"]
        kinds = [k for k in args.kinds.split(",") if k in sets and supported.get(k, {}).get("supported")]
        print(f"\n  {'clients':>7s}  {'kind':<16s} {'queries/s':>9s}  {'p50 ms':>7s}  {'p99 ms':>7s}  {'errors':>6s}  "
              f"{'per call':>8s}")
        rows += run_cells(server, sets, kinds, clients, args.seconds)
    finally:
        server.stop()
    if args.unbatched:
        server = Server(run_dir, index_path, ["--max-batch", "1"], log)
        try:
            rows += run_cells(server, sets, ["code"], (max(clients),), args.seconds, label=" (unbatched)")
        finally:
            server.stop()
    print()
    for kind in kinds:
        by = {r["clients"]: r["qps"] for r in rows if r["kind"] == kind}
        if min(clients) in by and max(clients) in by and by[min(clients)] > 0:
            print(f"{kind}: {max(clients)} clients answer {by[max(clients)] / by[min(clients)]:.1f}x the queries/s of "
                  f"{min(clients)} client")
    print(f"load average {os.getloadavg()[0]:.1f} at end (the clients' own threads included)")
    if args.json:
        Path(args.json).write_text(json.dumps({"index_calls": timing, "cells": rows, "seconds": args.seconds,
                                               "database": args.database, "bits": run.bits}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
