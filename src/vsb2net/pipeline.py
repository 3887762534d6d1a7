"""The main job, stage by stage: data -> split -> (validation) training -> codes -> metrics -> report.

``train_run`` and ``evaluate_run`` are what ``vsb2net train`` and ``vsb2net evaluate`` call;
``vsb2net run`` calls both.  Everything a later stage needs is written into the run directory, so
``evaluate`` works from the directory alone.
"""
from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .checkpoint import load_checkpoint, save_checkpoint
from .codes import pack_codes
from .config import RunConfig, config_from_dict, save_config
from .data import Dataset, load_dataset
from .data.semantics import class_vectors
from .data.splits import (ZeroShotSplit, choose_unseen, subsample_per_class, validation_split,
                          zero_shot_split)
from .errors import VsbError
from .io import write_json, write_npy
from .metrics import evaluate
from .models import METHODS, ClassContext, images_to_tensor, lle_weights
from .training import TrainResult, encode, resolve_device, seed_everything, train


@dataclass
class Prepared:
    """The dataset (already subsampled), its split and the class vectors of every class."""

    dataset: Dataset
    split: ZeroShotSplit
    vectors: np.ndarray
    x: torch.Tensor            # the network's view of every image


def run_dir(cfg: RunConfig) -> Path:
    name = cfg.name or f"{cfg.data.dataset}_{cfg.model.method}_{cfg.model.bits}bits_seed{cfg.train.seed}"
    return Path(cfg.out_dir) / name


def prepare(cfg: RunConfig) -> Prepared:
    d = cfg.data
    ds = load_dataset(d.dataset, d.root)
    keep = subsample_per_class(ds.labels, d.max_per_class, d.query_seed)
    if len(keep) < len(ds.labels):
        ds = Dataset(name=ds.name, x=ds.x[keep], labels=ds.labels[keep], class_names=ds.class_names,
                     kind=ds.kind, source=ds.source)
    unseen = choose_unseen(ds.class_names, d.unseen, d.n_unseen, d.split_seed)
    split = zero_shot_split(ds.labels, unseen, d.query_fraction, d.query_seed)
    vectors = class_vectors(d.class_vectors, ds.class_names)
    x = images_to_tensor(ds.x) if ds.kind == "image" else torch.from_numpy(np.asarray(ds.x, np.float32))
    return Prepared(ds, split, vectors, x)


def class_context(vectors: np.ndarray, train_classes: list[int], other_classes: list[int],
                  cfg: RunConfig, device: torch.device) -> tuple[ClassContext, dict[int, int]]:
    """Context for the loss: training classes first (in label order), then the other span classes."""
    span = list(train_classes) + (list(other_classes) if cfg.model.class_span == "seen+unseen" else [])
    v = vectors[span]
    ctx = ClassContext(vectors=torch.from_numpy(v).float().to(device), n_train=len(train_classes),
                       lle=torch.from_numpy(lle_weights(v, cfg.model.lle_neighbors, cfg.model.lle_reg)).to(device))
    return ctx, {c: i for i, c in enumerate(train_classes)}


def new_model(cfg: RunConfig, prep: Prepared) -> torch.nn.Module:
    seed_everything(cfg.train.seed, cfg.train.threads)
    return METHODS.get(cfg.model.method)(cfg.model, tuple(prep.x.shape[1:]), prep.vectors.shape[1])


def _fit(cfg: RunConfig, prep: Prepared, split: ZeroShotSplit, epochs: int, device: torch.device,
         desc: str, validate_on: ZeroShotSplit | None = None):
    labels = prep.dataset.labels
    ctx, pos = class_context(prep.vectors, split.seen, split.unseen, cfg, device)
    y = torch.from_numpy(np.array([pos[int(c)] for c in labels[split.train]], dtype=np.int64))
    model = new_model(cfg, prep)
    if hasattr(model, "set_class_reference"):
        model.set_class_reference(ctx.vectors[: ctx.n_train].cpu())
    validate = None
    if validate_on is not None:
        def validate(m: torch.nn.Module) -> float:
            m.eval()
            q = pack_codes(encode(m.hash_images, prep.x[validate_on.query_unseen], device))
            db = pack_codes(encode(m.hash_images, prep.x[validate_on.database], device))
            return evaluate(q, db, labels[validate_on.query_unseen], labels[validate_on.database], topk=())["map"]
    if not getattr(model, "trainable", True):
        return model.to(device), TrainResult(best_epoch=None)
    result = train(model, prep.x[split.train], y, ctx, cfg.train, epochs=epochs, device=device,
                   validate=validate, patience=cfg.train.patience if validate else None, desc=desc)
    if hasattr(model, "post_fit"):
        # two-stage methods (features, then a projection fitted on them) finish here
        model.post_fit(prep.x[split.train], y, ctx, device)
    return model, result


def train_run(cfg: RunConfig, prep: Prepared | None = None, log=print) -> Path:
    """Train on the seen classes (choosing the epoch count on the validation protocol) and save."""
    out = run_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    t0 = time.perf_counter()
    prep = prep or prepare(cfg)
    names = prep.dataset.class_names
    log(f"dataset {prep.dataset.name}: {len(prep.dataset.labels)} images, {len(names)} classes; "
        f"unseen = {', '.join(names[c] for c in prep.split.unseen)}")
    device = resolve_device(cfg.train.device)
    info: dict = {"device": str(device), "seed": cfg.train.seed}
    epochs = cfg.train.epochs
    if cfg.train.select_epochs:
        val = validation_split(prep.dataset.labels, prep.split, cfg.data.n_val_unseen,
                               cfg.data.query_fraction, cfg.data.split_seed)
        log(f"validation protocol: pseudo-unseen = {', '.join(names[c] for c in val.unseen)} "
            f"(train {len(val.train)}, queries {len(val.query_unseen)}, database {len(val.database)})")
        _, vres = _fit(cfg, prep, val, cfg.train.epochs, device, "validation", validate_on=val)
        epochs = vres.best_epoch or cfg.train.epochs
        if vres.best_score is not None:
            log(f"validation: best pseudo-unseen mAP {vres.best_score:.4f} after {epochs} epoch(s) "
                f"({vres.seconds:.0f} s)")
        info["validation"] = {"split": val.describe(names), "history": vres.history,
                              "best_epoch": vres.best_epoch, "best_map": vres.best_score, "seconds": vres.seconds}
    model, res = _fit(cfg, prep, prep.split, epochs, device, "train")
    log(f"trained {epochs} epoch(s) on {len(prep.split.train)} seen-class images ({res.seconds:.0f} s)")
    info["final"] = {"epochs": epochs, "history": res.history, "seconds": res.seconds}
    info["seconds_total"] = time.perf_counter() - t0
    save_checkpoint(out / "checkpoint.pt", {k: v.cpu() for k, v in model.state_dict().items()}, {
        "method": cfg.model.method, "bits": cfg.model.bits, "config": cfg.to_dict(),
        "class_names": list(names), "in_shape": list(prep.x.shape[1:]),
        "semantic_dim": int(prep.vectors.shape[1]), "vsb2net_version": __version__,
    })
    write_npy(out / "class_vectors.npy", prep.vectors.astype(np.float32))
    write_json(out / "split.json", {**prep.split.describe(names), "dataset": prep.dataset.name,
                                    "source": prep.dataset.source, "class_names": list(names),
                                    "split_seed": cfg.data.split_seed})
    write_json(out / "training.json", info)
    return out


def load_run(path: str | Path) -> tuple[RunConfig, torch.nn.Module, dict]:
    """Config, model (on CPU, eval mode) and checkpoint metadata of a trained run directory."""
    path = Path(path)
    if not path.is_dir():
        raise VsbError(f"run directory {path} does not exist; train one with `vsb2net train` or `vsb2net run`.")
    ckpt = load_checkpoint(path / "checkpoint.pt")
    cfg = config_from_dict(ckpt["config"]).validate()
    model = METHODS.get(ckpt["method"])(cfg.model, tuple(ckpt["in_shape"]), int(ckpt["semantic_dim"]))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise VsbError(f"checkpoint {path / 'checkpoint.pt'} does not fit a {ckpt['method']} model with "
                       f"{cfg.model.bits} bits: {str(exc).splitlines()[0]}") from None
    model.eval()
    return cfg, model, ckpt


def zero_shot_accuracy(model: torch.nn.Module, q_codes: np.ndarray, q_labels: np.ndarray, vectors: np.ndarray,
                       candidates: list[int]) -> float:
    """Zero-shot classification: the nearest semantic hash vector among the candidate classes.

    None for methods without a semantic branch (they cannot code a class).
    """
    if not getattr(model, "codes_classes", True):
        return None
    with torch.no_grad():
        s = np.where(model.hash_classes(torch.from_numpy(vectors[candidates]).float()).numpy() >= 0, 1, -1)
    b = np.where(q_codes >= 0, 1, -1)
    pred = np.asarray(candidates)[np.argmax(b @ s.T, axis=1)]  # max inner product = min Hamming distance
    return float(np.mean(pred == q_labels)) if len(q_labels) else 0.0


def evaluate_run(path: str | Path, prep: Prepared | None = None, log=print) -> dict:
    """Encode queries and database with a trained run, compute the metrics and write the report."""
    from .report import write_report

    path = Path(path)
    cfg, model, ckpt = load_run(path)
    prep = prep or prepare(cfg)
    if list(prep.dataset.class_names) != list(ckpt["class_names"]):
        raise VsbError(f"the dataset's classes {prep.dataset.class_names} differ from the ones the run was "
                       f"trained on {ckpt['class_names']}; evaluate on the same dataset.")
    device = resolve_device(cfg.train.device)
    model.to(device)
    t0 = time.perf_counter()
    sp, labels = prep.split, prep.dataset.labels
    cont = {name: encode(model.hash_images, prep.x[idx], device)
            for name, idx in (("query_unseen", sp.query_unseen), ("query_seen", sp.query_seen),
                              ("database", sp.database))}
    model.cpu()
    packed = {name: pack_codes(c) for name, c in cont.items()}
    encode_s = time.perf_counter() - t0
    topk = tuple(cfg.eval.topk)
    metrics = {
        "unseen": evaluate(packed["query_unseen"], packed["database"], labels[sp.query_unseen],
                           labels[sp.database], topk=topk),
        "seen": evaluate(packed["query_seen"], packed["database"], labels[sp.query_seen],
                         labels[sp.database], topk=topk),
    }
    metrics["unseen"]["zero_shot_accuracy"] = zero_shot_accuracy(
        model, cont["query_unseen"], labels[sp.query_unseen], prep.vectors, sp.unseen)
    metrics["seen"]["zero_shot_accuracy"] = zero_shot_accuracy(
        model, cont["query_seen"], labels[sp.query_seen], prep.vectors, sp.seen + sp.unseen)
    metrics["meta"] = {
        "method": cfg.model.method, "bits": cfg.model.bits, "dataset": prep.dataset.name,
        "split": sp.describe(prep.dataset.class_names), "encode_seconds": encode_s,
        "evaluate_seconds": time.perf_counter() - t0, "vsb2net_version": __version__,
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
    }
    tmp_codes = {f"{name}_codes": c for name, c in packed.items()}
    tmp_codes.update({f"{name}_index": idx for name, idx in
                      (("query_unseen", sp.query_unseen), ("query_seen", sp.query_seen), ("database", sp.database))})
    tmp_codes["labels"] = labels
    from .io import atomic_path
    with atomic_path(path / "codes.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **tmp_codes)
    write_json(path / "metrics.json", metrics)
    report = write_report(path, cfg, metrics, prep, packed)
    log(f"report: {report}")
    return metrics


def load_metrics(path: str | Path) -> dict:
    return json.loads((Path(path) / "metrics.json").read_text())
