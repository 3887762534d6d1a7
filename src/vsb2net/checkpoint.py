"""Checkpoints: a state dict plus plain-data metadata, never pickled objects.

Loaded with ``torch.load(weights_only=True)``, which refuses anything but tensors and plain
containers, so a checkpoint from elsewhere cannot run code.

Two kinds live in a run directory: ``checkpoint.pt``, the trained model (written once training
has finished), and ``resume.pt``, the training state at the last epoch boundary (rewritten
atomically after every epoch, removed when training finishes) from which ``vsb2net train
--resume`` continues.
"""
from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

from .errors import VsbError
from .io import atomic_path

FORMAT = "vsb2net/checkpoint"
VERSION = 1
RESUME_FORMAT = "vsb2net/resume"
RESUME_VERSION = 1
PHASES = ("validation", "final")

# A torch checkpoint is a zip archive (torch >= 1.6) or, in the legacy format, a pickle.
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = b"\x80"


def save_checkpoint(path: str | Path, state_dict: dict, meta: dict[str, Any]) -> None:
    payload = {"format": FORMAT, "version": VERSION, "state_dict": state_dict, **meta}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _read(path: Path, what: str, fix: str) -> Any:
    """``torch.load(weights_only=True)`` with every failure turned into one clear sentence."""
    if not path.is_file():
        raise VsbError(f"{what} {path} does not exist; {fix}")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head:
        raise VsbError(f"{what} {path} is empty (a copy or a save was cut off); {fix}")
    if not (head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_MAGIC)):
        raise VsbError(f"{what} {path} is not a torch checkpoint (it starts with bytes {head.hex(' ')}, "
                       f"not a zip archive); {fix}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found:
            raise VsbError(f"{what} {path} holds a Python object ({found.group(1)}) besides tensors and plain "
                           "data; it was refused unread, because loading it could run code. Use a file "
                           f"written by vsb2net; {fix}") from None
        raise VsbError(f"{what} {path} could not be unpickled ({_first_line(exc)}); it is corrupt or not "
                       f"written by vsb2net; {fix}") from None
    except Exception as exc:  # any parse failure of a file from disk is the file's fault
        raise VsbError(f"{what} {path} could not be read ({type(exc).__name__}: {_first_line(exc)}); it is "
                       f"truncated, corrupt or not written by vsb2net; {fix}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else "no detail"
    return first.split(". ")[0].rstrip(".")[:200]


def _check_marker(payload: Any, path: Path, what: str, kind: str, fmt: str, version: int, fix: str,
                  version_fix: str) -> None:
    """The format marker and version every vsb2net file carries."""
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise VsbError(f"{what} {path} is not {kind} (no '{fmt}' marker); {fix}")
    if payload.get("version") != version:
        raise VsbError(f"{what} {path} has format version {payload.get('version')}; this vsb2net reads "
                       f"version {version}{version_fix}")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    fix = "train again (vsb2net train) or give the run directory that holds a complete checkpoint.pt."
    payload = _read(path, "checkpoint", fix)
    _check_marker(payload, path, "checkpoint", "a vsb2net checkpoint", FORMAT, VERSION, fix,
                  ". Retrain with this version.")
    missing = [k for k in ("state_dict", "method", "bits", "config", "class_names", "in_shape", "semantic_dim")
               if k not in payload]
    if missing:
        raise VsbError(f"checkpoint {path} lacks the entries {', '.join(missing)}; it is damaged or was not "
                       f"written by vsb2net train; {fix}")
    bad = [k for k, v in payload["state_dict"].items() if not isinstance(v, torch.Tensor)] \
        if isinstance(payload["state_dict"], dict) else ["state_dict"]
    if bad:
        raise VsbError(f"checkpoint {path}: the weights {', '.join(bad[:5])} are not tensors; {fix}")
    nonfinite = [k for k, v in payload["state_dict"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if nonfinite:
        raise VsbError(f"checkpoint {path} has NaN or infinite values in {', '.join(nonfinite[:5])}: the training "
                       "diverged or the file was damaged. Retrain (with a lower train.lr if it diverged).")
    return payload


def save_training_state(path: str | Path, phase: str, epochs: int, config: dict, train_state: dict,
                        extra: dict[str, Any] | None = None) -> None:
    """The state at an epoch boundary of ``phase`` (of ``epochs`` planned); atomic."""
    payload = {"format": RESUME_FORMAT, "version": RESUME_VERSION, "phase": phase, "epochs": epochs,
               "config": config, "train": train_state, **(extra or {})}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_training_state(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    fix = "start the run again without --resume."
    payload = _read(path, "training state", fix)
    _check_marker(payload, path, "training state", "a vsb2net resume file", RESUME_FORMAT, RESUME_VERSION, fix,
                  "; " + fix)
    train = payload.get("train")
    if (payload.get("phase") not in PHASES or not isinstance(payload.get("config"), dict)
            or not isinstance(train, dict)
            or not all(k in train for k in ("epoch", "model", "optimizer", "history", "stale", "torch_rng"))):
        raise VsbError(f"training state {path} is incomplete or damaged; {fix}")
    return payload
