"""Time of one training step of the cnn28 backbone, memory layout NCHW against channels-last.

    .venv/bin/python benchmarks/backbone_speed.py

Prints milliseconds per step (forward, backward, Adam) on random batches of 128, for 28x28 grey
and 32x32 RGB images; the figures quoted in vsb2net.models.backbones come from it.
"""
from __future__ import annotations

import os
import platform
import time

import torch

from vsb2net.models.backbones import SmallCNN


def step_ms(shape: tuple[int, ...], channels_last: bool, steps: int = 30, warmup: int = 5) -> float:
    torch.manual_seed(0)
    model = SmallCNN(shape, 256)
    if not channels_last:  # undo the layout the backbone chooses for itself
        model.features.to(memory_format=torch.contiguous_format)
        forward = lambda x: model.fc(model.features(x.contiguous()))  # noqa: E731
    else:
        forward = model
    head = torch.nn.Linear(256, 32)
    opt = torch.optim.Adam(list(model.parameters()) + list(head.parameters()), 1e-3)
    x = torch.randn(128, *shape)
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        loss = head(forward(x)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps * 1000


def main() -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.1f}")
    print(f"{'images':<12}{'NCHW ms/step':>14}{'channels-last ms/step':>24}")
    for shape in [(1, 28, 28), (3, 32, 32)]:
        a, b = step_ms(shape, False), step_ms(shape, True)
        print(f"{'x'.join(map(str, shape)):<12}{a:>14.1f}{b:>24.1f}")


if __name__ == "__main__":
    main()
