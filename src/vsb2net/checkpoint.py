"""Checkpoints: a state dict plus plain-data metadata, never pickled objects.

Loaded with ``torch.load(weights_only=True)``, which refuses anything but tensors and plain
containers, so a checkpoint from elsewhere cannot run code.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from .errors import VsbError
from .io import atomic_path

FORMAT = "vsb2net/checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, state_dict: dict, meta: dict[str, Any]) -> None:
    payload = {"format": FORMAT, "version": VERSION, "state_dict": state_dict, **meta}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise VsbError(f"checkpoint {path} does not exist; train first (vsb2net train) or give the run directory "
                       "that holds checkpoint.pt.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise VsbError(f"checkpoint {path} could not be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                       "it is truncated, corrupt or not a vsb2net checkpoint. Retrain to recreate it.") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise VsbError(f"checkpoint {path} is not a vsb2net checkpoint (no '{FORMAT}' marker).")
    if payload.get("version") != VERSION:
        raise VsbError(f"checkpoint {path} has format version {payload.get('version')}; this vsb2net reads "
                       f"version {VERSION}. Retrain with this version.")
    return payload
