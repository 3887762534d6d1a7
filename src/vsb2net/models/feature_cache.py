"""On-disk cache of a pretrained backbone's frozen output (``FrozenTrunkBackbone``).

A frozen trunk maps an image to the same tensor in every epoch, run, tuning fold and benchmark
cell, and on a CPU it is by far the slowest part (EfficientNet-Lite0 at 64 px: about 100 images/s
per core against thousands for the small head).  So the pipeline computes it once per dataset and
keeps it as a ``.npy`` file named by a key of everything that decides it:

* the images as the network sees them (sha256 of the float tensor, and its shape): this covers
  the dataset's files, the per-class subsample and any resizing;
* the backbone, the sha256 of its weights file, the fine-tuned block count (where the frozen part
  ends), the resize and pixel normalisation, and the torch version.

Files are written atomically (temporary file, then rename); a damaged or mismatched file is
recomputed, never trusted.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..errors import VsbError
from ..io import atomic_path, write_json
from .backbones import FrozenTrunkBackbone
from .base import in_batches

#: raising it invalidates every cached file
CACHE_FORMAT = 1
BATCH = 256


def cache_dir(setting: str) -> Path | None:
    """``data.feature_cache`` -> the directory, or None for "none"."""
    s = str(setting).strip()
    if s.lower() == "none":
        return None
    if s.lower() == "auto":
        root = os.environ.get("VSB2NET_CACHE") or Path.home() / ".cache" / "vsb2net"
        return Path(root) / "features"
    return Path(s).expanduser()


def cache_key(backbone: FrozenTrunkBackbone, x: torch.Tensor) -> tuple[str, dict]:
    data = hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
    what = {"format": CACHE_FORMAT, **backbone.cache_identity(), "images_sha256": data,
            "images_shape": list(x.shape)}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:40], what


def extract(backbone: FrozenTrunkBackbone, x: torch.Tensor, log: Callable[[str], None] | None = None) -> torch.Tensor:
    """The frozen part's output for every image, in batches, on the CPU."""
    backbone.eval()
    t0 = time.perf_counter()
    feats = in_batches(backbone.frozen_features, x, torch.device("cpu"), BATCH)
    feats = torch.empty(0) if feats is None else feats
    if log:
        secs = time.perf_counter() - t0
        log(f"computed the frozen trunk output of {len(x)} images in {secs:.0f} s "
            f"({len(x) / max(secs, 1e-9):.0f} images/s)")
    return feats


def trunk_output(backbone: FrozenTrunkBackbone, x: torch.Tensor, setting: str = "auto",
                 log: Callable[[str], None] | None = None) -> torch.Tensor:
    """The frozen trunk's output of images ``x``, from the cache when it holds them."""
    where = cache_dir(setting)
    if where is None:
        return extract(backbone, x, log)
    key, what = cache_key(backbone, x)
    path = where / f"{key}.npy"
    if path.is_file():
        try:
            arr = np.load(path, allow_pickle=False)
            if arr.dtype == np.float32 and arr.shape[0] == len(x) and arr.shape[1] == backbone.cached_channels:
                if log:
                    log(f"frozen trunk output: cached ({path})")
                return torch.from_numpy(arr)
        except (ValueError, OSError, EOFError):
            pass  # damaged: computed again and overwritten below
        if log:
            log(f"the cached file {path} is damaged or does not fit; computing it again")
    feats = extract(backbone, x, log)
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, feats.numpy(), allow_pickle=False)
        write_json(where / f"{key}.json", {**what, "shape": list(feats.shape)})
    except OSError as exc:
        raise VsbError(f"cannot write the feature cache {path} ({exc.strerror or exc}); set data.feature_cache to "
                       "a writable directory or to none.") from None
    return feats
