"""Tuned files: what ``vsb2net tune`` writes (per-method settings chosen on the validation
protocol) and the committed defaults that ship with the package (``TUNED_DIR``), read as the
starting configuration of a run (``--tuned``) and of every benchmark cell.

A tuned file is YAML with a top-level ``methods`` mapping ``{method: {"section.key": value}}``,
the ``dataset`` it was tuned on, and the commands that wrote it; it holds none of the config
sections, which is how a ``--config`` file is told apart from one.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..config import (
    DataConfig,
    ModelConfig,
    RunConfig,
    apply_overrides,
    config_from_dict,
    config_keys,
    load_config_file,
    merge,
    params_class,
)
from ..errors import VsbError

SECTIONS = ("data", "model", "train", "eval")

#: the committed tuned defaults, ``<dataset>[.<backbone>].yaml``, shipped inside the package
TUNED_DIR = Path(__file__).resolve().with_name("tuned")


def is_tuned_file(values: dict[str, Any]) -> bool:
    """Whether a loaded config file is a tuned file: a top-level ``methods`` mapping and none of
    the config sections."""
    return isinstance(values.get("methods"), dict) and not any(s in values for s in SECTIONS)


def check_tuned(doc: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """Check a tuned file's ``methods`` mapping (``{method: {"section.key": value}}``): known keys,
    values of the right type.  Returns ``doc``."""
    methods = doc.get("methods")
    if not isinstance(methods, dict) or not methods:
        raise VsbError(f"tuned file {path} has no 'methods' mapping of per-method settings; write it with "
                       "`vsb2net tune` (e.g. `vsb2net tune --dataset animal-mnist --out tuned.yaml`).")
    for method, settings in methods.items():
        if not isinstance(settings, dict):
            raise VsbError(f"tuned file {path}: methods.{method} must be a mapping of section.key: value "
                           f"settings, got {settings!r}.")
        known = config_keys(method=str(settings.get("model.method", method)))
        renamed = params_class(str(settings.get("model.method", method))).renamed
        unknown = [str(k) for k in settings if k not in known and k.removeprefix("model.") not in renamed]
        if unknown:
            near = [m for k in unknown for m in difflib.get_close_matches(k, known, n=1, cutoff=0.8)]
            raise VsbError(f"tuned file {path}: methods.{method}: unknown key(s) {', '.join(unknown)}"
                           + (f" (did you mean {', '.join(near)}?)" if near else "")
                           + "; keys are section.key names of the configuration, e.g. model.w_rec or train.epochs.")
        if settings.get("model.method", method) != method:
            raise VsbError(f"tuned file {path}: methods.{method} sets model.method = {settings['model.method']!r}; "
                           "a method's settings cannot switch to another method.")
        try:
            config_from_dict(apply_overrides({}, {"model.method": method, **settings}))
        except VsbError as exc:
            raise VsbError(f"tuned file {path}: methods.{method}: {exc}") from None
    return doc


def load_tuned_file(path: str | Path) -> dict[str, Any]:
    """Read and check a tuned file written by ``vsb2net tune``."""
    return check_tuned(load_config_file(path, what="tuned file"), path)


def tuned_settings(doc: dict[str, Any], method: str, path: str | Path) -> dict[str, Any]:
    """The starting configuration a tuned file gives ``method``: the file's dataset and the
    method's settings, as ``{"section.key": value}``."""
    methods = doc["methods"]
    if method not in methods:
        from ..models import METHODS  # imports torch; only on this error path

        METHODS.get(method)  # an unknown method says so first
        raise VsbError(f"tuned file {path} has no settings for method {method!r}; it has "
                       f"{', '.join(map(str, methods))}. Choose one of them (--method or model.method), "
                       "or leave out the tuned file.")
    base = {"data.dataset": doc["dataset"]} if isinstance(doc.get("dataset"), str) else {}
    return {**base, **methods[method]}


def committed_tuned_file(dataset: str) -> Path | None:
    """``--tuned auto``: the tuned file that ships for ``dataset``, if there is one."""
    path = TUNED_DIR / f"{dataset}.yaml"
    return path if path.is_file() else None


def _dataset_of(values: dict[str, Any]) -> str:
    data = values.get("data")
    return str(data.get("dataset", DataConfig.dataset)) if isinstance(data, dict) else DataConfig.dataset


def tuned_config(path: str | Path | None = None, overrides: Iterable[str] | Mapping[str, Any] | None = None,
                 tuned: str | Path | None = None) -> RunConfig:
    """Defaults < ``tuned`` (a tuned file: its settings for the config's method; ``"auto"``: the one
    that ships for the config's dataset) < the file at ``path`` < ``overrides``.  ``path`` may itself
    be a tuned file: it is then read as ``tuned``."""
    values = load_config_file(path) if path else {}
    doc = None
    if path and is_tuned_file(values):
        if tuned:
            raise VsbError(f"config file {path} is a tuned file, and so is {tuned}; give only one of them.")
        doc, tuned, values = check_tuned(values, path), path, {}
    values = apply_overrides(values, overrides or [])
    if tuned == "auto":
        tuned = committed_tuned_file(_dataset_of(values))
    if doc is None and tuned:
        doc = load_tuned_file(tuned)
    if doc is not None and tuned is not None:
        model = values.get("model")
        method = model.get("method", ModelConfig.method) if isinstance(model, dict) else ModelConfig.method
        values = merge(apply_overrides({}, tuned_settings(doc, str(method).strip(), tuned)), values)
    return config_from_dict(values).validate()
