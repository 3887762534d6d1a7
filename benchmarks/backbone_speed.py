"""Time of one training step of the cnn28 backbone, memory layout NCHW against channels-last.

    .venv/bin/python benchmarks/backbone_speed.py

Prints milliseconds per step (forward, backward, Adam) on random batches of 128, for 28x28 grey
and 32x32 RGB images (docs/PERFORMANCE.md, "Training", quotes its output).  Then, for the
channels-last cnn28 and cnn28s on 28x28 images, what `benchmark --jobs` trades: one process with
all threads against one 1-thread process per core running at the same time (steps per second
over all processes).
"""
from __future__ import annotations

import multiprocessing
import os
import platform
import time

import torch

from vsb2net.models.backbones import SmallCNN, StridedSmallCNN


def step_ms(shape: tuple[int, ...], channels_last: bool, steps: int = 20, warmup: int = 5,
            cls=SmallCNN, rounds: int = 3) -> float:
    torch.manual_seed(0)
    model = cls(shape, 256)
    if not channels_last:  # undo the layout the backbone chooses for itself
        model.features.to(memory_format=torch.contiguous_format)
        forward = lambda x: model.fc(model.features(x.contiguous()))  # noqa: E731
    else:
        forward = model
    head = torch.nn.Linear(256, 32)
    opt = torch.optim.Adam(list(model.parameters()) + list(head.parameters()), 1e-3)
    x = torch.randn(128, *shape)

    def step() -> None:
        loss = head(forward(x)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    best = float("inf")
    for _ in range(rounds):  # the fastest round: a shared machine only ever adds time
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, (time.perf_counter() - t0) / steps * 1000)
    return best


def _one_thread_ms(cls) -> float:
    torch.set_num_threads(1)
    return step_ms((1, 28, 28), True, cls=cls)


def main() -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f}")
    print(f"{'images':<12}{'NCHW ms/step':>14}{'channels-last ms/step':>24}")
    for shape in [(1, 28, 28), (3, 32, 32)]:
        a, b = step_ms(shape, False), step_ms(shape, True)
        print(f"{'x'.join(map(str, shape)):<12}{a:>14.1f}{b:>24.1f}")
    cores = os.cpu_count() or 1
    print("\n28x28 grey, channels-last: steps per second over all processes")
    print(f"{'backbone':<10}{'1 process, ' + str(torch.get_num_threads()) + ' threads':>24}"
          f"{str(cores) + ' processes, 1 thread each':>30}")
    for cls in (SmallCNN, StridedSmallCNN):
        together = 1000 / step_ms((1, 28, 28), True, cls=cls)
        with multiprocessing.get_context("spawn").Pool(cores) as pool:
            apart = sum(1000 / ms for ms in pool.map(_one_thread_ms, [cls] * cores))
        print(f"{cls.name:<10}{together:>24.1f}{apart:>30.1f}")


if __name__ == "__main__":
    main()
