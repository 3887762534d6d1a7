"""Check the CUDA path: train a few steps and encode on a GPU, and compare with a CPU encode.

    python benchmarks/gpu_check.py [--device cuda:0] [--steps 30] [--data-root DIR] [--class-vectors FILE]

For anyone with a GPU: it trains VSB2-Net for a few steps on a tiny Animal-MNIST subset with
every tensor on the GPU (model, batches, the class context of the loss), encodes with it, moves
the same weights to the CPU, encodes again and reports whether the codes agree, then runs the
pipeline end to end (train_run and evaluate_run with train.device=cuda). Self-contained and
offline: the images come from the installed animal-mnist package or --data-root (synthetic
images when neither is there, and then the end-to-end part is skipped), the class vectors from
GloVe or --class-vectors (seeded random unit vectors when neither is there). Under a minute on
a GPU. Exits 2 with a message when CUDA is absent, 1 when a check fails.
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vsb2net.codes import pack_codes  # noqa: E402
from vsb2net.config import build_config  # noqa: E402
from vsb2net.data import Dataset, load_dataset  # noqa: E402
from vsb2net.data.semantics import class_vectors  # noqa: E402
from vsb2net.data.splits import choose_unseen, class_targets, subsample_per_class, zero_shot_split  # noqa: E402
from vsb2net.errors import VsbError  # noqa: E402
from vsb2net.models import create_method, images_to_tensor  # noqa: E402
from vsb2net.models.base import encode  # noqa: E402
from vsb2net.pipeline import Prepared, class_context, evaluate_run, train_run  # noqa: E402
from vsb2net.training import seed_everything, train  # noqa: E402

# Codes computed on a GPU differ from CPU ones by rounding (cuDNN picks other algorithms, and
# convolutions may use TF32); a bit may flip only where the continuous code is that close to 0.
ATOL = 1e-2


def _images(root: str | None, per_class: int) -> tuple[Dataset, str]:
    try:
        ds = load_dataset("animal-mnist", root)
        keep = subsample_per_class(ds.labels, per_class, 0)
        return Dataset(name=ds.name, x=ds.x[keep], labels=ds.labels[keep], class_names=ds.class_names,
                       source=ds.source), f"Animal-MNIST from {ds.source}"
    except VsbError as exc:
        rng = np.random.default_rng(0)
        names = ["Bear", "Bird", "Cat", "Cow", "Dog", "Elephant", "Giraffe", "Horse", "Sheep", "Zebra"]
        labels = np.repeat(np.arange(10), per_class)
        x = rng.integers(0, 256, size=(len(labels), 28, 28), dtype=np.uint8)
        return Dataset(name="synthetic", x=x, labels=labels, class_names=names), f"synthetic images ({exc})"


def _vectors(source: str | None, names: list[str]) -> tuple[np.ndarray, str]:
    try:
        return class_vectors(source or "glove", names), source or "GloVe"
    except VsbError as exc:
        v = np.random.default_rng(0).normal(size=(len(names), 50))
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32), f"random unit vectors ({exc})"


def _cuda_device(name: str) -> torch.device | None:
    """The GPU ``--device`` names, or None (with the reason on stderr) when this machine lacks it."""
    if not torch.cuda.is_available():
        print(f"gpu_check: CUDA is not available here (torch {torch.__version__}, built for CUDA "
              f"{torch.version.cuda or 'none'}); run this on a machine with an NVIDIA GPU and a CUDA build "
              "of torch.", file=sys.stderr)
        return None
    try:
        device = torch.device(name)
    except RuntimeError:
        device = torch.device("meta")
    if device.type != "cuda" or (device.index or 0) >= torch.cuda.device_count():
        print(f"gpu_check: --device {name} is not one of this machine's GPUs (cuda:0.."
              f"cuda:{torch.cuda.device_count() - 1}); this script checks the CUDA path only.", file=sys.stderr)
        return None
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())  # tensors report cuda:N, never bare cuda
    return device


def _train_briefly(ds: Dataset, vectors: np.ndarray, steps: int,
                   device: torch.device) -> tuple[torch.nn.Module, Prepared, list[str]]:
    """Train VSB2-Net for about ``steps`` steps on ``device``: the model, its data, and the problems
    seen (a tensor left off the device, a loss that did not go down)."""
    problems: list[str] = []
    cfg = build_config(None, ["model.bits=32", "model.feature_dim=64", "train.batch_size=64",
                              f"train.device={device}", "train.progress=false"])
    unseen = choose_unseen(ds.class_names, [], 2, 0)
    split = zero_shot_split(ds.labels, unseen, 0.1, 0)
    prep = Prepared(ds, split, vectors, images_to_tensor(ds.x))

    ctx = class_context(vectors, split, cfg, device)
    y = torch.from_numpy(class_targets(ds.labels, split.train, split.seen))
    seed_everything(cfg.train.seed)
    model = create_method(cfg.model.method, cfg.model, prep.in_shape, vectors.shape[1])
    model.set_class_reference(ctx.vectors[: ctx.n_train].cpu())
    steps_per_epoch = -(-len(split.train) // cfg.train.batch_size)
    epochs = max(1, -(-steps // steps_per_epoch))
    torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    res = train(model, prep.x[split.train], y, ctx, cfg.train, epochs=epochs, device=device)
    torch.cuda.synchronize(device)
    train_s = time.perf_counter() - t0
    first, last = res.history[0], res.history[-1]
    loss = lambda rec: sum(v for k, v in rec.items() if k != "epoch")  # noqa: E731
    print(f"trained {epochs * steps_per_epoch} steps ({epochs} epochs of {steps_per_epoch}) in {train_s:.2f} s; "
          f"summed loss terms {loss(first):.4f} (epoch 1) -> {loss(last):.4f} (epoch {epochs})")
    off = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.device != device]
    off += [f"ctx.{n}" for n in ("vectors", "lle") if getattr(ctx, n).device != device]
    if off:
        problems.append(f"tensors not on {device}: {', '.join(off)}")
    if not np.isfinite(loss(last)) or loss(last) >= loss(first):
        problems.append(f"the loss did not go down ({loss(first):.4f} -> {loss(last):.4f})")
    return model, prep, problems


def _compare_encodes(model: torch.nn.Module, x: torch.Tensor, device: torch.device) -> list[str]:
    """Encode ``x`` on the GPU and with the same weights on the CPU; a problem when they disagree."""
    model.eval()
    t0 = time.perf_counter()
    gpu = encode(model.hash_images, x, device)
    torch.cuda.synchronize(device)
    enc_s = time.perf_counter() - t0
    cpu_model = copy.deepcopy(model).cpu()
    cpu = encode(cpu_model.hash_images, x, torch.device("cpu"))
    diff = float(np.abs(gpu - cpu).max())
    bits_differ = (gpu >= 0) != (cpu >= 0)
    unexplained = int((bits_differ & (np.abs(cpu) > ATOL)).sum())
    print(f"encoded {gpu.shape[0]} images to codes of shape {pack_codes(gpu).shape} (packed from "
          f"{gpu.shape}) in {enc_s:.3f} s")
    print(f"CPU encode of the same weights: max |u_gpu - u_cpu| = {diff:.2e}; {int(bits_differ.sum())} of "
          f"{bits_differ.size} bits differ, {unexplained} of them where |u| > {ATOL}")
    if diff > ATOL or unexplained:
        return [f"GPU and CPU codes disagree beyond the tolerance {ATOL}"]
    return []


def _pipeline(vectors: np.ndarray, data_root: str | None, device: torch.device) -> None:
    """train_run and evaluate_run end to end with train.device on the GPU (Animal-MNIST only)."""
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "vectors.npy", vectors)
        run_cfg = build_config(None, [
            "data.max_per_class=50", f"data.class_vectors={Path(tmp) / 'vectors.npy'}",
            *([f"data.root={data_root}"] if data_root else []),
            "model.bits=32", "model.feature_dim=64", "train.epochs=2", "train.progress=false",
            f"train.device={device}", f"out_dir={tmp}", "name=gpu"])
        t0 = time.perf_counter()
        out = train_run(run_cfg, log=lambda *_: None)
        metrics = evaluate_run(out).metrics
        print(f"pipeline on {device}: train_run (validation + final) and evaluate_run in "
              f"{time.perf_counter() - t0:.1f} s; unseen mAP@all {metrics['unseen']['map']:.4f}, "
              f"encode {metrics['meta']['encode_seconds']:.3f} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=30, help="training steps (batches of 64)")
    ap.add_argument("--data-root", help="directory with the two Animal-MNIST files")
    ap.add_argument("--class-vectors", help=".npy/.csv class vectors (default GloVe)")
    args = ap.parse_args(argv)
    device = _cuda_device(args.device)
    if device is None:
        return 2
    print(f"device: {device} = {torch.cuda.get_device_name(device)}; torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}")

    ds, what = _images(args.data_root, 50)
    vectors, vwhat = _vectors(args.class_vectors, ds.class_names)
    print(f"data: {len(ds.labels)} images ({what}); class vectors: {vwhat}")
    model, prep, problems = _train_briefly(ds, vectors, args.steps, device)
    problems += _compare_encodes(model, prep.x, device)
    if ds.name == "animal-mnist":
        _pipeline(vectors, args.data_root, device)
    else:
        print("pipeline end to end: skipped (needs the Animal-MNIST files)")

    if problems:
        print("FAILED: " + "; ".join(problems))
        return 1
    print("OK: training and encoding run on CUDA, and the codes match a CPU encode within tolerance")
    return 0


if __name__ == "__main__":
    sys.exit(main())
