"""Encoding throughput of a trained model on the CPU: images -> packed binary codes.

    .venv/bin/python benchmarks/encode.py                  # trains a small run with the default model
    .venv/bin/python benchmarks/encode.py --run runs/animal-mnist_vsb2net_32bits_seed0

Without --run it trains a quick run (default architecture: throughput depends on the network,
not on how well it is trained; --max-per-class 100, 1 epoch) into a temporary directory.  Then
it encodes --images Animal-MNIST images the way ``vsb2net index build`` does
(vsb2net.run.Run.encode_images: the visual branch in batches of 1024 under inference mode,
then pack_codes), and a single image at a time for the latency of one query; both with torch's
default number of threads (the cores) and with one thread (--threads picks one setting).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", metavar="RUN_DIR", help="a trained run (default: train a small one)")
    p.add_argument("--images", type=int, default=10_000, help="images to encode (repeated if the dataset is smaller)")
    p.add_argument("--bits", type=int, default=32, help="code length of the run trained here")
    p.add_argument("--repeats", type=int, default=3, help="timed passes; the best is reported")
    p.add_argument("--threads", type=int, nargs="+", help="torch thread counts to try (default: the cores, then 1)")
    a = p.parse_args()
    import torch

    from vsb2net.cli import main as cli
    from vsb2net.data import load_dataset
    from vsb2net.models import images_to_tensor
    from vsb2net.run import Run

    tmp = None
    run_dir = a.run
    if run_dir is None:
        tmp = tempfile.TemporaryDirectory()
        t0 = time.perf_counter()
        cli(["train", "--max-per-class", "100", "--epochs", "1", "--bits", str(a.bits), "--no-progress",
             "--set", "train.select_epochs=false", "--out", tmp.name, "--name", "bench"])
        run_dir = str(Path(tmp.name) / "bench")
        print(f"trained a small run in {time.perf_counter() - t0:.0f} s")
    run = Run.load(run_dir)
    ds = load_dataset(run.cfg.data.dataset, run.cfg.data.root)
    pick = np.resize(np.arange(len(ds.labels)), a.images)
    x = images_to_tensor(ds.x[pick])
    params = sum(t.numel() for t in run.model.parameters())
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; "
          f"load average {os.getloadavg()[0]:.1f} at start")
    print(f"model: {run.ckpt['method']}, backbone {run.cfg.model.backbone}, {run.bits} bits, {params} parameters, "
          f"input {tuple(x.shape[1:])}")
    for threads in a.threads or [torch.get_num_threads(), 1]:
        torch.set_num_threads(threads)
        run.encode_images(x[:256])  # warm-up: first calls allocate and pick kernels
        best = float("inf")
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            codes = run.encode_images(x)
            best = min(best, time.perf_counter() - t0)
        assert codes.shape == (a.images, run.bits // 8)
        print(f"{threads} thread(s), batches of 1024: {a.images} images in {best:.2f} s = "
              f"{a.images / best:.0f} images/s")
        n_single = min(200, a.images)
        t0 = time.perf_counter()
        for i in range(n_single):
            run.encode_images(x[i:i + 1])
        dt = (time.perf_counter() - t0) / n_single
        print(f"{threads} thread(s), one image at a time: {dt * 1e3:.2f} ms per image = {1 / dt:.0f} images/s")
    print(f"load average {os.getloadavg()[0]:.1f} at end")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
