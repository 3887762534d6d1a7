"""Typed run configuration.

One dataclass per stage of the data flow (data -> model -> training -> evaluation), nested in
``RunConfig``.  A configuration can be read from a YAML or TOML file (parsed, never evaluated),
overridden by ``section.key=value`` strings from the command line, and is saved beside every run
so that the run can be reproduced and re-evaluated.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import json
import math
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

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
    #: or "balanced" (``split_seed`` 0..C-1 numbers a split of a design in which the C splits are
    #: distinct and every class is unseen equally often: the benchmark's main tables)
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


class MethodParams:
    """Base of a method's own parameters: a dataclass declared in the method's file
    (``class Params(MethodParams)``), registered with the method.  Its fields are the method's
    ``model.<name>`` settings in config files, ``--set`` and tuned files, with their defaults;
    ``typing.Literal`` fields take one of their values; fields named ``w_*`` are loss weights
    (>= 0, 0 switches the term off).  A class-level ``validate`` adds checks of its own."""

    #: names a parameter had when ModelConfig held every method's settings -> today's name: a
    #: saved config, tuned file or ``--set`` with the old name sets the same value, and a benchmark
    #: cell's hash is taken under the old name, so renaming never recomputes a cell
    renamed: ClassVar[dict[str, str]] = {}
    #: parameters added after runs and benchmark cells were saved -> the value that reproduces the
    #: behaviour from before they existed: a saved config without the key takes it, and a cell's
    #: hash leaves the key out while it holds it
    added: ClassVar[dict[str, Any]] = {}
    #: parameters that change only how queries are coded after training (not the loss, not the
    #: image codes): the tuning's score, pseudo-unseen image mAP, cannot see them, so they are
    #: never in a method's search space (a search would pick them at random)
    query_only: ClassVar[frozenset[str]] = frozenset()

    def validate(self, model: ModelConfig) -> None:
        """Checks beyond the declared types (``model``: the shared settings, e.g. the backbone)."""


#: method name -> its Params class; each method's file registers it (``vsb2net.models`` imports them)
_METHOD_PARAMS: dict[str, type[MethodParams]] = {}


def register_params(method: str, cls: type[MethodParams]) -> None:
    if not (isinstance(cls, type) and issubclass(cls, MethodParams) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"method {method}: Params must be a dataclass deriving from MethodParams")
    _METHOD_PARAMS[method] = cls


def unregister_params(method: str) -> None:
    _METHOD_PARAMS.pop(method, None)


def params_class(method: str) -> type[MethodParams]:
    """The Params class of ``method``.  The methods register theirs when ``vsb2net.models`` is
    imported; a configuration read before that imports it here (plugin discovery, as a registry
    of entry points would: config.py itself names no method)."""
    if method not in _METHOD_PARAMS:
        importlib.import_module("vsb2net.models")
    if method not in _METHOD_PARAMS:
        raise VsbError(f"unknown method {method!r}; known: {', '.join(sorted(_METHOD_PARAMS))}.")
    return _METHOD_PARAMS[method]


def method_names() -> list[str]:
    """Every method that declares its parameters (all registered methods)."""
    params_class(ModelConfig.method)  # discovery
    return sorted(_METHOD_PARAMS)


@dataclass
class ModelConfig:
    """What every method shares (which method, its backbone, the code length) and the method's own
    parameters (``params``, declared in the method's file).  In files and ``--set`` they are one
    flat section: ``model.bits``, ``model.w_rec``, ..."""

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
    #: the hash layer of every method on the shared visual branch: "linear" (W f + b) or "center"
    #: (then standardised over the batch, a batch norm without scale: the backbone's features end
    #: in a ReLU, so every code starts with one large shared component that a pairwise loss's
    #: gradient follows, which killed DPSH's last layer in its first steps).  "center" since the
    #: benchmark's tables (chosen on the validation protocol, docs/METHODS.md "The code layer"); a
    #: run saved before the option existed reads back as "linear" (ADDED_OPTIONS)
    code_layer: Literal["linear", "center"] = "center"
    #: the method's own parameters (an instance of its Params); None = its defaults
    params: Any = None

    def __post_init__(self) -> None:
        cls = params_class(self.method)
        if self.params is None:
            self.params = cls()
        elif type(self.params) is not cls:  # e.g. dataclasses.replace(cfg, method=...) keeping the old method's
            raise TypeError(f"ModelConfig: params {type(self.params).__qualname__} do not belong to method "
                            f"{self.method!r}; give params=None for its defaults, or ModelConfig.of(method, ...)")

    @classmethod
    def of(cls, method: str = "vsb2net", **values: Any) -> ModelConfig:
        """A model section from flat keyword values, shared and the method's own alike
        (``ModelConfig.of("dsh", bits=16, margin_k=2.0)``)."""
        return _model_from_dict({"method": method, **values}, "model")

    def to_dict(self) -> dict[str, Any]:
        """The flat section as files hold it: the shared keys, then the method's parameters."""
        shared = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "params"}
        return {**shared, **dataclasses.asdict(self.params)}


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
        for section, values in self.to_dict().items():
            for key, value in values.items() if isinstance(values, dict) else ():
                if isinstance(value, float) and not math.isfinite(value):
                    raise VsbError(f"{section}.{key} = {value}: must be a finite number.")
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
        if d.unseen_split not in ("auto", "proposed", "random", "combination", "balanced"):
            raise VsbError(f"data.unseen_split = {d.unseen_split!r}: use auto, proposed, random, combination or "
                           "balanced.")
        if d.image_size is not None and not 8 <= d.image_size <= 4096:
            raise VsbError(f"data.image_size = {d.image_size}: give a side length in pixels between 8 and 4096, "
                           "or none to keep the stored size.")
        if not 0.0 < d.query_fraction < 1.0:
            raise VsbError(f"data.query_fraction = {d.query_fraction}: use a fraction between 0 and 1.")
        if self.train.epochs < 1 or self.train.batch_size < 1:
            raise VsbError("train.epochs and train.batch_size must be at least 1.")
        if d.max_per_class is not None and d.max_per_class < 2:
            raise VsbError("data.max_per_class must be at least 2 (one query and one database item).")
        for key, value in dataclasses.asdict(m.params).items():
            if key.startswith("w_") and value < 0:
                raise VsbError(f"model.{key} = {value}: loss weights must be >= 0 (0 switches the term off).")
        m.params.validate(m)
        return self

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["model"] = self.model.to_dict()
        return out


# ---------------------------------------------------------------------------------------------
# building from dicts, files and overrides

def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert ``value`` (from a file or a command-line string) to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        text = value.strip() if isinstance(value, str) else value
        if text not in args:
            raise VsbError(f"{where} = {value!r}: use {' or '.join(repr(a) for a in args)}.")
        return text
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
    if cls is ModelConfig:
        return _model_from_dict(values, where)
    hints = _field_types(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise VsbError(f"{where + ': ' if where else ''}unknown key(s) {', '.join(unknown)}; "
                       f"known keys: {', '.join(hints)}.")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in values.items()}
    return cls(**kwargs)


SHARED_MODEL_KEYS = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name != "params")


def param_types(cls: type[MethodParams]) -> dict[str, Any]:
    """A Params class's parameters and their types, in declaration order (its class-level
    ``renamed``/``added`` tables are not parameters)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}  # type: ignore[arg-type]


def setting_known(key: str) -> bool:
    """Whether some method has the ``section.key`` setting (a ``--set`` for many methods at once)."""
    return any(setting_applies(key, m) for m in method_names())


def setting_applies(key: str, method: str) -> bool:
    """Whether the ``section.key`` setting means anything to ``method``: every key but a ``model.*``
    parameter of another method.  A benchmark's or tuning's ``--set`` holds for the methods it
    applies to (``--set model.margin_k=3`` changes DSH's cells, not the others')."""
    section, _, name = key.partition(".")
    if section != "model" or name in SHARED_MODEL_KEYS:
        return True
    cls = params_class(method)
    return cls.renamed.get(name, name) in param_types(cls)


def _model_from_dict(values: dict[str, Any], where: str, saved: bool = False) -> ModelConfig:
    """The flat model section -> ModelConfig: the shared keys, the rest the method's parameters
    (under today's name or the one it had before, ``Params.renamed``).  ``saved``: a run's saved
    configuration, which before methods owned their settings held every method's, and a
    parameter added since takes the value it had before it existed (``Params.added``)."""
    method = str(values.get("method", ModelConfig.method)).strip()
    params_cls = params_class(method)
    hints = param_types(params_cls)
    shared, own, unknown = {}, {}, []
    for key, value in values.items():
        name = params_cls.renamed.get(key, key)
        if key in SHARED_MODEL_KEYS:
            shared[key] = value
        elif name in hints:
            own[name] = value
        elif not saved:  # a saved run of an older version lists every method's settings; this one read its own
            unknown.append(key)
    if unknown:
        near = [m for k in unknown
                for m in difflib.get_close_matches(k, list(hints) + list(SHARED_MODEL_KEYS), n=1, cutoff=0.7)]
        raise VsbError(f"{where}: unknown key(s) {', '.join(unknown)} for method {method}"
                       + (f" (did you mean {', '.join(near)}?)" if near else "")
                       + f"; its own settings: {', '.join(hints) or '(none)'}; every method's: "
                       f"{', '.join(SHARED_MODEL_KEYS)} (`vsb2net methods` lists each method's).")
    if saved:
        for name, old in params_cls.added.items():
            own.setdefault(name, old)
    shared_types = _field_types(ModelConfig)
    kwargs = {k: _coerce(v, shared_types[k], f"{where}.{k}") for k, v in shared.items()}
    kwargs["method"] = method
    params = params_cls(**{k: _coerce(v, hints[k], f"{where}.{k}") for k, v in own.items()})
    return ModelConfig(**kwargs, params=params)


def config_from_dict(values: dict[str, Any]) -> RunConfig:
    return _from_dict(RunConfig, values, "")


#: shared options added after runs and benchmark cells were saved, each with the value that
#: reproduces the behaviour from before it existed: a saved configuration without the key takes
#: that value, and a benchmark cell's hash leaves the key out while it holds it, so adding an option
#: neither changes old runs nor invalidates cells.  A method's own such parameters: ``Params.added``
ADDED_OPTIONS: dict[str, Any] = {"model.finetune_blocks": 0, "train.mixup": 0.0, "model.code_layer": "linear"}


def saved_config_from_dict(values: dict[str, Any]) -> RunConfig:
    """The configuration a run was trained with, read from its saved dictionary: a key that the
    saving vsb2net did not have yet takes the default of that time, not today's."""
    values = {k: dict(v) if isinstance(v, dict) else v for k, v in values.items()}
    for dotted, old in ADDED_OPTIONS.items():
        section, key = dotted.split(".", 1)
        if isinstance(values.get(section), dict):
            values[section].setdefault(key, old)
    if not isinstance(values.get("model"), dict):
        return config_from_dict(values)  # no model section saved: today's defaults
    model = values.pop("model")
    cfg = config_from_dict(values)
    cfg.model = _model_from_dict(model, "model", saved=True)
    return cfg


def hashed_settings(cfg: RunConfig) -> dict[str, Any]:
    """The flat ``section.key`` settings a benchmark cell's hash covers: each method parameter
    under the name it had when cells were first computed (``Params.renamed``), less what a cell's
    hash has always left out: an option added later while it holds its old value."""
    params_cls = type(cfg.model.params)
    old_name = {new: old for old, new in params_cls.renamed.items()}
    added = {**ADDED_OPTIONS, **{f"model.{k}": v for k, v in params_cls.added.items()}}
    flat = {}
    for section, values in cfg.to_dict().items():
        for key, value in values.items() if isinstance(values, dict) else ():
            dotted = f"{section}.{key}"
            if not (dotted in added and value == added[dotted]):
                flat[f"model.{old_name.get(key, key)}" if section == "model" else dotted] = value
    return flat


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


def config_keys(cls: type = RunConfig, prefix: str = "", method: str = ModelConfig.method) -> list[str]:
    """Every settable ``section.key`` (and top-level key) of the configuration of ``method``."""
    keys = []
    for name, tp in _field_types(cls).items():
        if tp is ModelConfig:
            keys += [f"{prefix}{name}.{k}" for k in SHARED_MODEL_KEYS]
            keys += [f"{prefix}{name}.{k}" for k in param_types(params_class(method))]
        elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
            keys += config_keys(tp, f"{prefix}{name}.", method)
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
    of ``vsb2net tune`` starts it with a method's settings: :func:`vsb2net.comparison.tuned.tuned_config`."""
    values = load_config_file(path) if path else {}
    return config_from_dict(apply_overrides(values, overrides or [])).validate()


def save_config(cfg: RunConfig, path: str | Path) -> None:
    from .io import write_text

    write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
