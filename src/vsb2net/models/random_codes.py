"""Random codes: the floor every method must beat.

Each image gets bits that look random and do not depend on its class: a high-frequency sine of a
random projection of the pixels, so the code is a deterministic function of the image (the same
image always gets the same code) but carries no usable similarity.
"""
from __future__ import annotations

import torch

from ..config import ModelConfig
from .base import METHODS, HashingMethod


@METHODS.register("random", help="content-independent pseudo-random codes (the floor)")
class RandomCodes(HashingMethod):
    codes_classes = False
    trainable = False
    uses_backbone = False
    family = "floor"
    paper = "(none: content-independent codes)"
    tunable = False
    search = {}
    reference = {}
    projection: torch.Tensor

    def __init__(self, cfg: ModelConfig, in_shape: tuple[int, ...], semantic_dim: int) -> None:
        super().__init__(cfg)
        n_in = 1
        for s in in_shape:
            n_in *= s
        g = torch.Generator().manual_seed(4242 + cfg.bits)
        self.register_buffer("projection", torch.randn(n_in, cfg.bits, generator=g))

    def hash_images(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(1e4 * (x.flatten(1) @ self.projection))
