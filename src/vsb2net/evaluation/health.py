"""Health of a trained model, read before any average of its figures: does it use its codes, and is
its visual branch alive?  A collapsed method is a defect to fix, never a result (METHOD.md, "Fair
comparison"); benchmark cells record these and RESULTS.md flags the cells that fail them.

* ``distinct_codes``: distinct database codes; no more than the number of classes is a collapse.
* ``bit_balance``: mean over bits of |mean of the +-1 bit| over the database (0: every bit half
  on; 1: every bit constant).
* ``dead_units``: share of the backbone's feature units that are zero (ReLU) for every image of a
  sample of training images.
* ``feature_rank``: effective rank of those features (exp of the entropy of the normalised
  singular values of the centred features; Roy & Vetterli 2007): how many directions they use.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..codes import unpack_codes
from ..models.base import HashingMethod, encode

#: training images whose backbone features are read (enough for a stable rank of a 256-wide layer)
SAMPLE = 1024


def code_health(packed: np.ndarray, bits: int) -> dict[str, float | int]:
    """Distinct codes and bit balance of packed database codes."""
    signs = unpack_codes(packed, bits).astype(np.float64)
    return {"distinct_codes": int(len(np.unique(packed, axis=0))) if len(packed) else 0,
            "bit_balance": float(np.abs(signs.mean(0)).mean()) if len(signs) else 0.0}


def effective_rank(features: np.ndarray) -> float:
    """exp(entropy of the normalised singular values) of the centred rows; 0 for no spread."""
    centred = features - features.mean(0)
    s = np.linalg.svd(centred, compute_uv=False)
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-(p * np.log(p)).sum()))


def feature_health(model: HashingMethod, x: torch.Tensor, device: torch.device, seed: int = 0) -> dict[str, Any]:
    """Dead units and effective rank of the backbone's features on a seeded sample of ``x``
    (None for a method without a backbone)."""
    backbone = getattr(model, "backbone", None)
    if backbone is None or len(x) == 0:
        return {"dead_units": None, "feature_rank": None}
    pick = np.sort(np.random.default_rng(seed).permutation(len(x))[:SAMPLE])
    model.eval()
    f = encode(backbone, x[torch.from_numpy(pick)], device).astype(np.float64)
    return {"dead_units": float((np.abs(f).max(0) == 0).mean()), "feature_rank": effective_rank(f)}


def model_health(model: HashingMethod, x_train: torch.Tensor, database_packed: np.ndarray, bits: int,
                 device: torch.device) -> dict[str, Any]:
    return {**code_health(database_packed, bits), **feature_health(model, x_train, device)}


def collapsed(health: dict[str, Any] | None, n_classes: int, seen_map: float | None,
              seen_chance: float | None) -> str | None:
    """Why a learned method's cell counts as collapsed, or None: no more distinct database codes
    than classes, or seen@seen within 0.05 of its chance level."""
    if health and health.get("distinct_codes") is not None and health["distinct_codes"] <= n_classes:
        return f"{health['distinct_codes']} distinct codes for {n_classes} classes"
    if seen_map is not None and seen_chance is not None and seen_map <= seen_chance + 0.05:
        return f"seen@seen {seen_map:.3f} within 0.05 of chance {seen_chance:.3f}"
    return None
