"""Typed run configuration.

One dataclass per stage of the data flow (data -> model -> training -> evaluation), nested in
``RunConfig``.  A configuration can be read from a YAML or TOML file (parsed, never evaluated),
overridden by ``section.key=value`` strings from the command line, and is saved beside every run
so that the run can be reproduced and re-evaluated.
"""
from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import VsbError


@dataclass
class DataConfig:
    """Dataset and zero-shot protocol (METHOD.md, "Protocol")."""

    dataset: str = "animal-mnist"
    #: directory with the dataset's files; None = the dataset's default location
    root: str | None = None
    #: "auto" (the dataset's own attributes when it ships them, e.g. xlsa17; else "glove"),
    #: "glove" (word vectors of the class names), "attributes", or a .npy/.csv file of class vectors
    class_vectors: str = "auto"
    #: unseen classes by name; empty = the dataset's proposed split or a seeded draw (unseen_split)
    unseen: list[str] = field(default_factory=list)
    #: when ``unseen`` is empty: "proposed" (the dataset's own split, e.g. xlsa17's), "random"
    #: (``n_unseen`` classes drawn with ``split_seed``), "auto" (proposed when there is one) or
    #: "combination" (``split_seed`` numbers one of all choices of ``n_unseen`` classes: 0..44 for pairs of 10)
    unseen_split: str = "auto"
    n_unseen: int = 2
    split_seed: int = 0
    #: seed of the query draw, apart from split_seed so that every split holds out the same query
    #: images: no split ever trains (or tunes) on an image that is a test query in another
    query_seed: int = 0
    #: fraction of every class held out as queries (never trained on, never in the database)
    query_fraction: float = 0.1
    #: seen classes held out as pseudo-unseen by the validation protocol (model selection)
    n_val_unseen: int = 2
    #: keep at most this many images per class (quick runs and tests); None = all.  For
    #: multi-label data: at most max_per_class x classes items, drawn at random
    max_per_class: int | None = None
    #: resize images to image_size x image_size pixels when loading; None = as stored (an image
    #: folder whose images differ in size needs it)
    image_size: int | None = None
    #: where the output of a pretrained backbone's frozen part is kept between runs
    #: (efficientnet-lite0): "auto" ($VSB2NET_CACHE or ~/.cache/vsb2net), a directory, or "none"
    feature_cache: str = "auto"


@dataclass
class ModelConfig:
    """VSB2-Net (METHOD.md, "Architecture").  A loss weight of 0 switches that term off."""

    method: str = "vsb2net"
    #: "auto" = cnn28 for images, mlp for precomputed features; see `vsb2net backbones`
    backbone: str = "auto"
    #: torchvision backbones only: "imagenet" (torchvision's pretrained weights), "random" or the
    #: path of a local weights file; our own backbones (cnn28, mlp) always start from random
    backbone_weights: str = "imagenet"
    #: pretrained backbones with a frozen trunk (efficientnet-lite0): how many of their last blocks
    #: train; the frozen rest is computed once per dataset and cached (data.feature_cache)
    finetune_blocks: int = 0
    bits: int = 32
    #: width of the backbone's visual feature f
    feature_dim: int = 256
    #: hidden width of the semantic-branch MLP; 0 = a linear semantic branch
    semantic_hidden: int = 256
    #: scale of the prototype logits alpha * <u, z_c> / K
    alpha: float = 30.0
    w_rec: float = 1.0
    # 0.1, not 1: chosen by `vsb2net tune` on the validation protocol of both Animal-MNIST and
    # Fashion-MNIST (src/vsb2net/bench/tuned/); at weight 1 the relation term costs pseudo-unseen mAP
    w_rel: float = 0.1
    w_dis: float = 0.1
    w_q: float = 0.1
    #: bit balance and decorrelation of the image codes over a batch (ours; 0 = off)
    w_bal: float = 0.0
    #: codes' inner products follow the cosines of the batch-centred visual features (ours; 0 = off)
    w_sim: float = 0.0
    #: std of Gaussian noise added to the class vectors at each training step, in units of each
    #: dimension's spread over the training classes (ours; 0 = off)
    semantic_noise: float = 0.0
    #: neighbours per class in the LLE reconstruction of the semantic space
    lle_neighbors: int = 3
    lle_reg: float = 1e-3
    #: mass of the classification target moved to the label's semantic (LLE) neighbours; 0 = one-hot
    cls_semantic_smoothing: float = 0.0
    #: similarity <z_c, z_c'>/K above which two class codes are pushed apart
    dis_margin: float = 0.0
    #: reconstruction target: "batch" (the backbone feature f standardised per dimension over the
    #: batch), "l2" (f/|f|) or "input" (the input itself, images average-pooled to 7x7, standardised)
    rec_target: str = "batch"
    #: stop the reconstruction gradient flowing into the feature target f
    rec_detach_target: bool = True
    #: subtract the training classes' mean vector before the semantic branch
    center_semantics: bool = True
    #: classes spanned by the relation/discrepancy terms: "seen" (strict) or "seen+unseen"
    #: (unseen class *vectors* only, no unseen images: still inductive)
    class_span: str = "seen"
    #: codes of class-name queries: "relation" (rebuilt from the training classes' mean image codes
    #: with the LLE weights of the class vector over theirs) or "semantic" (the semantic branch).
    #: "relation" since it never lost to "semantic" on the validation protocol, in four batches
    #: (docs/RESULTS.md, "Levers tried": class-name mAP +0.01 to +0.08, image codes unchanged)
    class_codes: str = "relation"
    #: the margin of the field's margin losses, in each one's own unit (DSH: of K, the squared
    #: distance dissimilar pairs are pushed beyond; DPN: of the polarisation hinge; OrthoHash: of
    #: the cosine to the class's code); tuned per method (docs/METHODS.md)
    margin: float = 1.0
    #: VSB2-Net's classification loss (ours): "prototype" (softmax of alpha <u, z_c> / K, the
    #: reconstruction in METHOD.md) or "orthocos" (OrthoHash's margin cosine cross-entropy,
    #: alpha (cos(u, z_c) - margin [c = y]), against the same semantic prototypes z_c)
    cls_loss: str = "prototype"
    #: batch normalisation of VSB2-Net's hash layer before the tanh (OrthoHash's code layer; ours)
    code_norm: bool = False


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    #: "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
    device: str = "auto"
    #: choose the number of epochs on the validation protocol, then retrain on all seen classes
    select_epochs: bool = True
    #: what the validation protocol maximises on the pseudo-unseen classes: "image" (image ->
    #: image mAP@all) or "image+class" (its mean with the class-name mAP, for semantic methods)
    select_on: str = "image"
    #: stop the validation run after this many epochs without improvement
    patience: int = 3
    #: training-time augmentation for every method alike: "none", "shift" or "shift-flip"
    augment: str = "none"
    #: mixup of training items and their targets, Beta(mixup, mixup) weights; 0 = off
    mixup: float = 0.0
    #: torch intra-op threads; 0 = every usable core but one, or OMP_NUM_THREADS when set (vsb2net/threads.py)
    threads: int = 0
    progress: bool = True


@dataclass
class EvalConfig:
    #: cut-offs for mAP@K (denominator: relevant items in the top K)
    topk: list[int] = field(default_factory=lambda: [100, 1000])
    #: unseen-class queries shown in the retrieval picture
    n_examples: int = 6


@dataclass
class RunConfig:
    name: str = ""
    out_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> RunConfig:
        m, d, t = self.model, self.data, self.train
        # NaN slips through every comparison below, and inf through most
        for section in ("data", "model", "train", "eval"):
            for f in dataclasses.fields(getattr(self, section)):
                value = getattr(getattr(self, section), f.name)
                if isinstance(value, float) and not math.isfinite(value):
                    raise VsbError(f"{section}.{f.name} = {value}: must be a finite number.")
        if not t.lr > 0:
            raise VsbError(f"train.lr = {t.lr}: the learning rate must be positive, e.g. 0.002.")
        if t.weight_decay < 0:
            raise VsbError(f"train.weight_decay = {t.weight_decay}: must be >= 0.")
        for name, value in (("train.seed", t.seed), ("data.split_seed", d.split_seed),
                            ("data.query_seed", d.query_seed)):
            if value < 0:
                raise VsbError(f"{name} = {value}: seeds must be >= 0.")
        if t.patience < 1 or t.threads < 0:
            raise VsbError(f"train.patience = {t.patience}, train.threads = {t.threads}: patience must be at "
                           "least 1 and threads at least 0 (0 = every usable core but one).")
        if m.bits <= 0 or m.bits % 8:
            raise VsbError(f"model.bits = {m.bits}: the code length must be a positive multiple of 8 "
                           "(codes are stored packed in bytes); try 16, 32, 48 or 64.")
        if m.semantic_hidden < 0:
            raise VsbError(f"model.semantic_hidden = {m.semantic_hidden}: give a width >= 1, or 0 for a linear "
                           "semantic branch.")
        if m.class_span not in ("seen", "seen+unseen"):
            raise VsbError(f"model.class_span = {m.class_span!r}: use 'seen' or 'seen+unseen'.")
        if m.cls_loss not in ("prototype", "orthocos"):
            raise VsbError(f"model.cls_loss = {m.cls_loss!r}: use 'prototype' or 'orthocos'.")
        if m.class_codes not in ("semantic", "relation"):
            raise VsbError(f"model.class_codes = {m.class_codes!r}: use 'semantic' or 'relation'.")
        if m.rec_target not in ("batch", "l2", "input"):
            raise VsbError(f"model.rec_target = {m.rec_target!r}: use 'batch', 'l2' or 'input'.")
        if t.select_on not in ("image", "image+class"):
            raise VsbError(f"train.select_on = {t.select_on!r}: use image or image+class.")
        if not t.mixup >= 0:
            raise VsbError(f"train.mixup = {t.mixup}: give the Beta parameter (> 0, e.g. 0.4), or 0 for no mixup.")
        if self.train.augment not in ("none", "shift", "shift-flip"):
            raise VsbError(f"train.augment = {self.train.augment!r}: use none, shift or shift-flip.")
        if m.finetune_blocks < 0:
            raise VsbError(f"model.finetune_blocks = {m.finetune_blocks}: give 0 (frozen trunk) or more.")
        if m.backbone.startswith("efficientnet-lite"):
            if m.backbone_weights.strip().lower() == "random":
                raise VsbError(f"model.backbone = {m.backbone} with backbone_weights=random: its trunk is frozen, so "
                               "random weights would never learn; use backbone_weights=imagenet (the packaged "
                               "weights) or model.backbone=cnn28 to train from scratch.")
            if t.augment != "none":
                raise VsbError(f"train.augment = {t.augment} with model.backbone = {m.backbone}: the frozen trunk's "
                               "output is computed once and cached, so images cannot be augmented per epoch; use "
                               "train.augment=none.")
            if m.rec_target == "input":
                raise VsbError(f"model.rec_target = input with model.backbone = {m.backbone}: the network sees the "
                               "cached trunk output, not the images; use rec_target=batch or l2.")
        if d.unseen_split not in ("auto", "proposed", "random", "combination"):
            raise VsbError(f"data.unseen_split = {d.unseen_split!r}: use auto, proposed, random or combination.")
        if d.image_size is not None and not 8 <= d.image_size <= 4096:
            raise VsbError(f"data.image_size = {d.image_size}: give a side length in pixels between 8 and 4096, "
                           "or none to keep the stored size.")
        if not 0.0 < d.query_fraction < 1.0:
            raise VsbError(f"data.query_fraction = {d.query_fraction}: use a fraction between 0 and 1.")
        if m.semantic_noise < 0:
            raise VsbError(f"model.semantic_noise = {m.semantic_noise}: use a standard deviation >= 0 (0 = off).")
        for name in ("w_rec", "w_rel", "w_dis", "w_q", "w_bal", "w_sim", "alpha"):
            if getattr(m, name) < 0:
                raise VsbError(f"model.{name} = {getattr(m, name)}: loss weights must be >= 0 "
                               "(0 switches the term off).")
        if self.train.epochs < 1 or self.train.batch_size < 1:
            raise VsbError("train.epochs and train.batch_size must be at least 1.")
        if d.max_per_class is not None and d.max_per_class < 2:
            raise VsbError("data.max_per_class must be at least 2 (one query and one database item).")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# building from dicts, files and overrides

def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert ``value`` (from a file or a command-line string) to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise VsbError(f"{where}: expected a table/section, got {value!r}.")
        return _from_dict(tp, value, where)
    if origin is list:
        (item_tp,) = args
        if isinstance(value, str):
            value = [v for v in (s.strip() for s in value.split(",")) if v]
        if not isinstance(value, (list, tuple)):
            raise VsbError(f"{where}: expected a list, got {value!r}.")
        return [_coerce(v, item_tp, where) for v in value]
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
                return False
            raise ValueError
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if tp is str:
            if not isinstance(value, (str, int, float)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        raise VsbError(f"{where} = {value!r}: expected a value of type {tp.__name__}.") from None
    return value


def _from_dict(cls: type, values: dict[str, Any], where: str) -> Any:
    hints = _field_types(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise VsbError(f"{where + ': ' if where else ''}unknown key(s) {', '.join(unknown)}; "
                       f"known keys: {', '.join(hints)}.")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in values.items()}
    return cls(**kwargs)


def config_from_dict(values: dict[str, Any]) -> RunConfig:
    return _from_dict(RunConfig, values, "")


#: options added after runs and benchmark cells were saved, each with the value that reproduces the
#: behaviour from before it existed (its first default; model.class_codes's default changed since):
#: a saved configuration without the key takes that value, and a benchmark cell's hash leaves the
#: key out while it holds it, so adding an option neither changes old runs nor invalidates cells
ADDED_OPTIONS: dict[str, Any] = {
    "model.finetune_blocks": 0, "model.class_codes": "semantic", "train.mixup": 0.0, "model.w_sim": 0.0,
    "model.semantic_noise": 0.0, "model.margin": 1.0, "model.cls_loss": "prototype", "model.code_norm": False,
}


def saved_config_from_dict(values: dict[str, Any]) -> RunConfig:
    """The configuration a run was trained with, read from its saved dictionary: a key that the
    saving vsb2net did not have yet takes the default of that time, not today's."""
    values = {k: dict(v) if isinstance(v, dict) else v for k, v in values.items()}
    for dotted, old in ADDED_OPTIONS.items():
        section, key = dotted.split(".", 1)
        if isinstance(values.get(section), dict):
            values[section].setdefault(key, old)
    return config_from_dict(values)


def load_config_file(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """Parse a YAML (.yaml/.yml) or TOML (.toml) file into a plain dict (never evaluated);
    ``what`` names the file in error messages."""
    path = Path(path)
    if path.is_dir():
        raise VsbError(f"{what} {path} is a directory; give the path of a .yaml or .toml file.")
    if not path.is_file():
        raise VsbError(f"{what} {path} does not exist; give the path of a .yaml or .toml file.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise VsbError(f"{what} {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8.") from None
    try:
        if path.suffix == ".toml":
            values = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml", ".json"):
            values = yaml.safe_load(text)
        else:
            raise VsbError(f"{what} {path}: unknown extension {path.suffix!r}; use .yaml, .yml or .toml.")
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise VsbError(f"{what} {path} could not be parsed: {exc}") from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise VsbError(f"{what} {path}: the top level must be a mapping of "
                       + ("sections (data, model, train, eval)." if what == "config file" else "keys."))
    return values


def parse_overrides(items: Iterable[str]) -> dict[str, str]:
    """``section.key=value`` strings (``--set``, ``vsb2net tune --set``, ...) -> ``{"section.key":
    "value"}``, in order; a later item for the same key wins.  The one parser of such strings: only
    the syntax is checked here, keys and values when a config is built from them.  Top-level keys
    (``name=...``, ``out_dir=...``) have no section."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        parts = [p.strip() for p in key.split(".")]
        if not sep or not all(parts):
            raise VsbError(f"override {item!r}: write it as section.key=value, e.g. model.bits=64.")
        key = ".".join(parts)
        out.pop(key, None)  # keeps the order in which the items take effect
        out[key] = value.strip()
    return out


def apply_overrides(values: dict[str, Any], overrides: Iterable[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings, or a mapping ``{"section.key": value}``, on top of a
    config dict (string values stay strings; they are typed when the config is built)."""
    values = json.loads(json.dumps(values))  # deep copy of plain data
    pairs = overrides if isinstance(overrides, Mapping) else parse_overrides(overrides)
    for key, value in pairs.items():
        parts = key.split(".")
        node = values
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise VsbError(f"override {f'{key}={value}'!r}: {part} is not a section.")
        node[parts[-1]] = value
    return values


def config_keys(cls: type = RunConfig, prefix: str = "") -> list[str]:
    """Every settable ``section.key`` (and top-level key) of the configuration."""
    keys = []
    for name, tp in _field_types(cls).items():
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            keys += config_keys(tp, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, section by section."""
    out = dict(base)
    for key, value in top.items():
        out[key] = (merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict)
                    else value)
    return out


def build_config(path: str | Path | None = None,
                 overrides: Iterable[str] | Mapping[str, Any] | None = None) -> RunConfig:
    """Defaults < the config file at ``path`` < ``overrides`` (``section.key=value``).  A tuned file
    of ``vsb2net tune`` starts it with a method's settings: :func:`vsb2net.bench.tuned.tuned_config`."""
    values = load_config_file(path) if path else {}
    return config_from_dict(apply_overrides(values, overrides or [])).validate()


def save_config(cfg: RunConfig, path: str | Path) -> None:
    from .io import write_text

    write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
