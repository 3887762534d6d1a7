"""The main job, stage by stage: data -> split -> (validation) training -> codes -> metrics -> report.

``train_run`` and ``evaluate_run`` are what ``vsb2net train`` and ``vsb2net evaluate`` call;
``vsb2net run`` calls both, and the command line then writes the report (``report.write_report``).
Everything a later stage needs is written into the run directory through :mod:`vsb2net.run`, so
``evaluate`` works from the directory alone.
"""
from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch

from . import __version__, distributed
from . import run as runfiles
from .config import RunConfig
from .data import Dataset, load_dataset
from .data.images import resize_array
from .data.semantics import class_vectors, resolve_source
from .data.splits import (
    ZeroShotSplit,
    choose_unseen,
    class_targets,
    subsample_per_class,
    validation_size,
    validation_split,
    zero_shot_split,
)
from .distributed import SINGLE, Dist
from .errors import TrainingInterrupted, VsbError
from .evaluation.model_eval import evaluate_model, run_meta, validation_score
from .evaluation.record import Metrics
from .models import METHODS, ClassContext, HashingMethod, create_method, images_to_tensor, relations
from .models.backbones import FrozenTrunkBackbone, build_backbone, frozen_trunk, set_input_reference
from .models.feature_cache import trunk_output
from .training import TrainResult, Validate, resolve_device, seed_everything, train


@dataclass
class Prepared:
    """The dataset (already subsampled), its split and the class vectors of every class."""

    dataset: Dataset
    split: ZeroShotSplit
    vectors: np.ndarray
    x: torch.Tensor            # the network's view of every image
    #: where the class vectors came from: "glove", "attributes" or the file given (auto resolved)
    vectors_source: str = ""
    #: the shape of one input as the model is built for it; differs from x's when x holds a frozen
    #: trunk's cached output instead of the images (the model still codes images, e.g. uploads)
    input_shape: tuple[int, ...] | None = None

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.input_shape or self.x.shape[1:])


def prepared_dataset(cfg: RunConfig) -> Dataset:
    """The dataset as a run sees it: loaded, subsampled per class (data.max_per_class) and resized
    (data.image_size); its indices are the ids of the run's codes and of indexes of it."""
    d = cfg.data
    ds = load_dataset(d.dataset, d.root, image_size=d.image_size)
    keep = subsample_per_class(ds.labels, d.max_per_class, d.query_seed)
    if len(keep) < len(ds.labels):
        ds = ds.subset(keep)
    if ds.kind == "image" and d.image_size is not None and ds.x.shape[1:3] != (d.image_size, d.image_size):
        # loaders that read one fixed size (the MNIST family) leave resizing to here
        ds.x = resize_array(ds.x, d.image_size)
    return ds


def prepare(cfg: RunConfig) -> Prepared:
    d = cfg.data
    ds = prepared_dataset(cfg)
    unseen = choose_unseen(ds.class_names, unseen_names(cfg, ds), d.n_unseen, d.split_seed,
                           combination=d.unseen_split == "combination", balanced=d.unseen_split == "balanced")
    split = zero_shot_split(ds.labels, unseen, d.query_fraction, d.query_seed)
    source = resolve_source(d.class_vectors, ds.attributes) or str(d.class_vectors)
    vectors = class_vectors(d.class_vectors, ds.class_names, attributes=ds.attributes, dataset=ds.name)
    x = images_to_tensor(ds.x) if ds.kind == "image" else torch.from_numpy(np.asarray(ds.x, np.float32))
    in_shape = tuple(x.shape[1:])
    uses_backbone = METHODS.get(cfg.model.method).uses_backbone
    if ds.kind == "image" and uses_backbone and frozen_trunk(cfg.model.backbone, in_shape):
        m = cfg.model
        backbone = cast(FrozenTrunkBackbone,  # frozen_trunk() said so
                        build_backbone(m.backbone, in_shape, m.feature_dim, m.backbone_weights, m.finetune_blocks))
        x = trunk_output(backbone, x, d.feature_cache, log=print if cfg.train.progress else None)
    return Prepared(ds, split, vectors, x, source, in_shape)


def unseen_names(cfg: RunConfig, ds: Dataset) -> list[str]:
    """The unseen classes named by the configuration or the dataset's proposed split ([] = draw by seed)."""
    d = cfg.data
    if d.unseen:
        return list(d.unseen)
    if d.unseen_split == "proposed" and ds.proposed_unseen is None:
        raise VsbError(f"data.unseen_split = proposed, but dataset {ds.name!r} has no proposed split; use "
                       "data.unseen_split=random (n_unseen classes drawn with split_seed) or name the unseen "
                       "classes with data.unseen.")
    if d.unseen_split in ("proposed", "auto") and ds.proposed_unseen is not None:
        return list(ds.proposed_unseen)
    return []


def class_context(vectors: np.ndarray, split: ZeroShotSplit, cfg: RunConfig, device: torch.device) -> ClassContext:
    """What the loss knows about the classes of ``split`` (:func:`vsb2net.models.relations.class_context`)."""
    span, neighbors, reg = METHODS.get(cfg.model.method).relation_settings(cfg.model.params)
    return relations.class_context(vectors, split.seen, split.unseen, span, neighbors, reg, device)


def fit_method(cfg: RunConfig, prep: Prepared, split: ZeroShotSplit, epochs: int, device: torch.device,
               desc: str, validate_on: ZeroShotSplit | None = None, *, resume: dict | None = None,
               on_epoch_end=None, dist: Dist = SINGLE, stage: dict | None = None) -> tuple[HashingMethod, TrainResult]:
    """The one fit lifecycle of every method, for runs, validation, tuning, benchmark cells and tests:
    build (:func:`create_method`, seeded), the class reference, the input reference, the gradient
    steps when the method is ``trainable``, then ``post_fit``.

    ``validate_on`` scores the pseudo-unseen classes of that split after every epoch (the
    validation protocol).  ``stage`` (a ``stage_state()`` of the same ``shared_stage``, trained
    with the same settings) replaces the gradient steps: LSH, ITQ and TSK share one classifier.
    """
    labels = prep.dataset.labels
    ctx = class_context(prep.vectors, split, cfg, device)
    y = torch.from_numpy(class_targets(labels, split.train, split.seen))
    x_train = prep.x[split.train]
    seed_everything(cfg.train.seed, cfg.train.threads)
    model = create_method(cfg.model.method, cfg.model, prep.in_shape, prep.vectors.shape[1])
    model.set_class_reference(ctx.vectors[: ctx.n_train].cpu())
    set_input_reference(model, x_train)
    validate: Validate | None = None
    if validate_on is not None:
        def pseudo_unseen_score(m: HashingMethod) -> tuple[float, dict[str, float | None]]:
            # a two-stage method codes nothing before its projection is fitted
            m.post_fit(x_train, y, ctx, device)
            metrics, _ = evaluate_model(m, prep.x, labels, validate_on, prep.vectors, prep.dataset.class_names,
                                        device, topk=(), curves=False, rows=("unseen",), alignment=False,
                                        asymmetric=False)
            row = metrics["unseen"]
            return validation_score(metrics, cfg.train.select_on), {
                "val_image_map": row["map"], "val_class_map": row["class_query_map"],
                "val_oracle_map": row["oracle_class_map"], "val_distinct_codes": row["distinct_codes"]}
        validate = pseudo_unseen_score

    result = TrainResult(best_epoch=None)
    if stage is not None:
        model.load_state_dict({**model.state_dict(), **stage})
        model.to(device)
    elif model.trainable:
        result = train(model, x_train, y, ctx, cfg.train, epochs=epochs, device=device, validate=validate,
                       patience=cfg.train.patience if validate else None, desc=desc, on_epoch_end=on_epoch_end,
                       resume=resume, dist=dist)
    else:
        model.to(device)
    if dist.is_main:
        # two-stage methods (features, then a projection fitted on them) finish here; only rank 0's
        # model is saved, so the other ranks skip it
        model.post_fit(x_train, y, ctx, device)
    return model, result


def _silent(*_args, **_kwargs) -> None:
    pass


def train_run(cfg: RunConfig, prep: Prepared | None = None, log=print, *, resume: dict | None = None,
              out: str | Path | None = None) -> Path:
    """Train on the seen classes (choosing the epoch count on the validation protocol) and save.

    After every epoch the training state is saved to ``RUN_DIR/resume.pt``; ``resume`` (a state
    from :func:`resume_config`) continues from it, with ``out`` the run directory it came from.
    Under torchrun every rank calls this; rank 0 alone logs and writes files.
    """
    device = resolve_device(cfg.train.device)
    dist, device = distributed.setup(device)
    try:
        return _train_run(cfg, prep, log if dist.is_main else _silent, resume,
                          Path(out) if out is not None else runfiles.default_dir(cfg), device, dist)
    finally:
        distributed.teardown(dist)


def _train_run(cfg: RunConfig, prep: Prepared | None, log, resume: dict | None, out: Path,
               device: torch.device, dist: Dist) -> Path:
    t0 = time.perf_counter()
    prep = prep or prepare(cfg)
    names = prep.dataset.class_names
    # everything that can reject the input runs before the first file is written
    val = (validation_split(prep.dataset.labels, prep.split, cfg.data.n_val_unseen,
                            cfg.data.query_fraction, cfg.data.split_seed) if cfg.train.select_epochs else None)
    fresh = resume is None
    created = not out.exists()
    info, resumes = _training_info(cfg, device, dist, resume)
    last = ({"phase": resume["phase"], "epoch": int(resume["train"]["epoch"]), "epochs": int(resume["epochs"])}
            if resume else {})

    def saver(phase: str, epochs: int, extra: dict):
        def save(state: dict) -> None:
            runfiles.write_resume_state(out, phase, epochs, cfg, state, {**extra, "resumes": resumes})
            last.update(phase=phase, epoch=int(state["epoch"]), epochs=epochs)
        return save

    finished = False
    try:  # from the first file written on, so that an interruption anywhere is handled alike
        if dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
            runfiles.remove_stale_temporaries(out)
            if fresh:
                # a resume state of an earlier, killed run here belongs to that run, not this one
                runfiles.drop_resume_state(out)
                runfiles.write_config(out, cfg)
        log(f"dataset {prep.dataset.name}: {len(prep.dataset.labels)} images, {len(names)} classes; "
            f"unseen = {', '.join(names[c] for c in prep.split.unseen)}")
        if resume:
            log(f"resuming {out} after epoch {resume['train']['epoch']} of {resume['epochs']} of the "
                f"{resume['phase']} phase")
        epochs = cfg.train.epochs
        if val is not None:
            epochs = _validation_phase(cfg, prep, val, device, dist, resume, saver, log, info)
        model, res = fit_method(cfg, prep, prep.split, epochs, device, "train",
                                resume=resume["train"] if resume and resume["phase"] == "final" else None,
                                on_epoch_end=saver("final", epochs, {"validation": info.get("validation")}),
                                dist=dist)
        if not dist.is_main:
            return out
        log(f"trained {epochs} epoch(s) on {len(prep.split.train)} seen-class images ({res.seconds:.0f} s)")
        info["final"] = {"epochs": epochs, "history": res.history, "seconds": res.seconds}
        info["seconds_total"] = time.perf_counter() - t0
        _save_trained(out, cfg, prep, model, info, fresh)
        # last, so that a kill before this point still leaves a state to resume from
        finished = True
        runfiles.drop_resume_state(out)
    except KeyboardInterrupt as exc:
        if finished:
            raise  # every output is complete; nothing to resume or discard
        resumable = runfiles.has_resume_state(out)
        if fresh and not resumable and dist.is_main:
            runfiles.discard(out, created)
        where = (f"{last['phase']} phase, epoch {last['epoch']} of {last['epochs']}" if last else "")
        raise TrainingInterrupted(out, getattr(exc, "signum", signal.SIGINT), resumable, where) from None
    except VsbError:
        if fresh and dist.is_main:
            runfiles.discard(out, created)
        raise
    return out


def _training_info(cfg: RunConfig, device: torch.device, dist: Dist, resume: dict | None) -> tuple[dict, list]:
    """training.json's head (device, seeds, batch) and the list of resumes so far."""
    resumes = list(resume.get("resumes", [])) if resume else []
    if resume:
        resumes.append({"phase": resume["phase"], "epoch": int(resume["train"]["epoch"]), "world_size": dist.world})
    info: dict = {"device": str(device), "seed": cfg.train.seed, "split_seed": cfg.data.split_seed,
                  "query_seed": cfg.data.query_seed, "world_size": dist.world,
                  "batch_size": cfg.train.batch_size, "batch_per_rank": math.ceil(cfg.train.batch_size / dist.world)}
    if resumes:
        info["resumed"] = resumes
    return info, resumes


def _validation_phase(cfg: RunConfig, prep: Prepared, val: ZeroShotSplit, device: torch.device, dist: Dist,
                      resume: dict | None, saver, log, info: dict) -> int:
    """Train on the validation split, score its pseudo-unseen classes every epoch and return the
    epoch count chosen (recorded in ``info["validation"]``); a resume in the final phase keeps the
    choice it made."""
    names = prep.dataset.class_names
    if resume and resume["phase"] == "final":
        info["validation"] = resume["validation"]
    else:
        _, adapted = validation_size(len(prep.split.seen), cfg.data.n_val_unseen)
        log(f"validation protocol: pseudo-unseen = {', '.join(names[c] for c in val.unseen)} "
            f"(train {len(val.train)}, queries {len(val.query_unseen)}, database {len(val.database)})"
            + (f"; {adapted}" if adapted else ""))
        _, vres = fit_method(cfg, prep, val, cfg.train.epochs, device, "validation", validate_on=val,
                             resume=resume["train"] if resume else None,
                             on_epoch_end=saver("validation", cfg.train.epochs, {}), dist=dist)
        if vres.best_score is not None:
            log(f"validation: best pseudo-unseen mAP {vres.best_score:.4f} after "
                f"{vres.best_epoch} epoch(s) ({vres.seconds:.0f} s)")
        info["validation"] = {"split": val.describe(names), "history": vres.history,
                              "best_epoch": vres.best_epoch, "best_map": vres.best_score, "seconds": vres.seconds}
    return info["validation"]["best_epoch"] or cfg.train.epochs


def _save_trained(out: Path, cfg: RunConfig, prep: Prepared, model: HashingMethod, info: dict, fresh: bool) -> None:
    """What a finished training leaves in the run directory (:mod:`vsb2net.run` names the files)."""
    names = prep.dataset.class_names
    if not fresh:
        runfiles.write_config(out, cfg)
    runfiles.write_trained(
        out, {k: v.cpu() for k, v in model.state_dict().items()},
        {"method": cfg.model.method, "bits": cfg.model.bits, "config": cfg.to_dict(), "class_names": list(names),
         "in_shape": list(prep.in_shape), "semantic_dim": int(prep.vectors.shape[1]), "vsb2net_version": __version__},
        prep.vectors,
        {**prep.split.describe(names), "dataset": prep.dataset.name, "source": prep.dataset.source,
         "class_names": list(names), "class_vectors": prep.vectors_source, "split_seed": cfg.data.split_seed},
        info)


@dataclass
class EvaluatedRun:
    """What :func:`evaluate_run` computed, for the report (``report.write_report``)."""

    path: Path
    cfg: RunConfig
    metrics: Metrics
    prep: Prepared
    packed: dict[str, np.ndarray]


def evaluate_run(path: str | Path, prep: Prepared | None = None) -> EvaluatedRun:
    """Encode queries and database with a trained run, compute the metrics and write them with the codes."""
    path = Path(path)
    run = runfiles.Run.load(path)
    cfg, model, ckpt = run.cfg, run.model, run.ckpt
    prep = prep or prepare(cfg)
    if list(prep.dataset.class_names) != list(ckpt["class_names"]):
        raise VsbError(f"the dataset's classes {prep.dataset.class_names} differ from the ones the run was "
                       f"trained on {ckpt['class_names']}; evaluate on the same dataset.")
    if prep.vectors.shape[1] != int(ckpt["semantic_dim"]):
        raise VsbError(f"the class vectors ({cfg.data.class_vectors}) are now semantic vectors of dimension "
                       f"{prep.vectors.shape[1]}, but {path} was trained on dimension {ckpt['semantic_dim']}: the "
                       f"file changed since training. Restore it (the run's copy is {path / runfiles.CLASS_VECTORS}).")
    device = resolve_device(cfg.train.device)
    sp, labels = prep.split, prep.dataset.labels
    metrics, enc = evaluate_model(model, prep.x, labels, sp, prep.vectors, prep.dataset.class_names, device,
                                  topk=tuple(cfg.eval.topk))
    metrics["semantics"]["source"] = prep.vectors_source
    metrics["meta"] = {"method": cfg.model.method, "bits": cfg.model.bits, "dataset": prep.dataset.name,
                       "split": sp.describe(prep.dataset.class_names), **metrics.pop("timing"), **run_meta()}
    packed = enc.packed
    codes = {f"{name}_codes": c for name, c in packed.items()}
    codes.update({f"{name}_index": getattr(sp, name) for name in packed})
    codes["labels"] = labels
    runfiles.write_evaluation(path, codes, cast(dict, metrics))
    return EvaluatedRun(path, cfg, metrics, prep, packed)
