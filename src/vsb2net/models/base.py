"""The interface every hashing method declares (pytorch-metric-learning style: one explicit base
class per kind of component, so callers never probe a method with ``hasattr``).

A method is an ``nn.Module`` built as ``cls(model_cfg, in_shape, semantic_dim)``.  What it provides
is stated by class attributes and by which methods it overrides:

* ``hash_images(x)``: continuous codes (N, K) of inputs; the binary code is their sign.  Required.
* ``training_loss(x, y, ctx)``: ``(loss, {term: value})`` of one batch.  Required when ``trainable``.
* ``uses_backbone``: False for a method that codes the raw input, whatever ``model.backbone``.
* ``codes_classes``: True when the method has a semantic branch, ``hash_classes(vectors)`` giving
  the codes of class vectors (class-name search, zero-shot classification, class-name mAP).
* ``set_class_reference(train_vectors)``: called once before training with the training
  classes' semantic vectors (e.g. to size a classifier); no-op by default.
* ``post_fit(x, y, ctx, device)``: a second stage after training (two-stage methods fit their
  projection here); no-op by default.
* ``Params``: the method's own parameters, a dataclass deriving from
  :class:`~vsb2net.config.MethodParams` with their defaults (``model.<name>`` in config files and
  ``--set``); the method reads them as ``self.params``.  What every method shares (backbone, bits,
  feature width) is ``ModelConfig``'s.  A benchmark cell's hash covers the shared settings and
  these, so a parameter of one method never recomputes another method's cells.
* ``index_batches``: ``training_loss`` also gets ``idx``, the training-set positions of the batch
  (ADSH keeps a learned code per training image); ``epoch_start(x, y, ctx, device)`` runs before
  every epoch (ADSH updates those codes there); no-op by default.

What the rest of the system needs to know about a method is declared here too, so that the
registry is the one place that knows it (``comparison``, ``make_results.py`` and docs/METHODS.md read
these attributes; none of them lists method names):

* ``family``: one of :data:`FAMILIES` (the kind of supervision, as the field groups methods).
* ``paper``: the publication the loss is written from (our reconstruction where it says so).
* ``search``: the ``vsb2net tune`` search space, ``{name: Float | Int | Choice}`` (:mod:`vsb2net.space`)
  over its parameters (and ``train.lr``, ``train.*``); ``reference``: its paper's (or reference
  implementation's) values, the first trial.  The epoch count is always tuned.  ``tunable`` False:
  nothing to tune (``random``).
* ``ablations``: ``{"suffix": {"model.key": value}}``, each a benchmark variant ``NAME-suffix``.
* ``shared_stage``: methods whose first training stage is the same seeded classifier declare the
  same key, so a benchmark trains it once per split (LSH, ITQ, TSK: "classifier").
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..config import SHARED_MODEL_KEYS, MethodParams, ModelConfig, TrainConfig, register_params, unregister_params
from ..registry import Registry
from ..space import LogFloat, Space
from .relations import ClassContext

#: what ``training_loss`` returns: the loss to minimise and its terms by name (floats, for the log)
LossTerms = tuple[torch.Tensor, dict[str, float]]

#: the learning rate's range, the one training setting every trainable method searches (its own
#: file may narrow it); 2e-3 is the shared default every method was tuned with before
LR_SPACE = LogFloat(2e-4, 1e-2)

#: how methods are grouped (as in the deep hashing literature): the supervision a loss uses
FAMILIES = {
    "zero-shot": "zero-shot hashing: class semantics (word vectors, attributes) carry knowledge to unseen classes",
    "pointwise": "pointwise supervised: each image against its class (a classifier, hash centres, a codebook)",
    "pairwise": "pairwise supervised: pairs of images, similar when they share a class",
    "asymmetric": "asymmetric supervised: network codes of images against learned codes of the training set",
    # not "unsupervised": the features come from a classifier trained on the seen classes' labels
    "classifier-features": "unsupervised hashing (no hashing loss) of the features of a classifier trained with the "
                           "seen classes' labels: supervised features",
    "floor": "no learning: the level every method must beat",
}


class HashingMethod(nn.Module):
    #: has a semantic branch: ``hash_classes`` codes class vectors into the image Hamming space
    codes_classes: bool = False
    #: trained by gradient steps on ``training_loss`` (False: codes need no training, e.g. random)
    trainable: bool = True
    #: codes the output of ``model.backbone`` (False: codes the raw input, e.g. random), so the
    #: pipeline hands it a frozen trunk's cached output only when True
    uses_backbone: bool = True
    @dataclasses.dataclass
    class Params(MethodParams):
        """No parameters of its own."""

    family: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    #: the tuning search space: the method's parameters by name, training settings as ``train.key``
    #: (the epoch count is tuned besides)
    search: ClassVar[dict[str, Space]] = {"train.lr": LR_SPACE}
    #: the paper's or reference implementation's values of the searched settings: the first trial
    reference: ClassVar[dict[str, Any]] = {"train.lr": TrainConfig.lr}
    #: False: nothing to tune, not even the epochs (methods that are not trained)
    tunable: ClassVar[bool] = True
    #: benchmark variants ``NAME-suffix``, each switching options of this method
    ablations: ClassVar[dict[str, dict[str, object]]] = {}
    #: methods declaring the same key train the same first stage; None = a stage of its own
    shared_stage: ClassVar[str | None] = None
    #: ``training_loss`` gets ``idx=`` (the batch's training-set positions) as well
    index_batches: ClassVar[bool] = False
    #: buffers whose shape is known only once training starts (the training classes or items);
    #: a loaded checkpoint sizes them before its values are copied in
    sized_by_training: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: ModelConfig | None = None) -> None:
        # None: a module used as a method outside the registry (a test's lookup table)
        super().__init__()
        self.cfg: Any = cfg
        self.params: Any = cfg.params if cfg is not None else None

    @classmethod
    def relation_settings(cls, params: Any) -> tuple[str, int, float]:
        """The classes the class context spans ("seen" or "seen+unseen") and its LLE
        neighbours and regulariser: the defaults, for a method that reads none of them."""
        return "seen", 3, 1e-3

    def hash_images(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement hash_images")

    def hash_classes(self, vectors: torch.Tensor) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} has no semantic branch (codes_classes is False): "
                        "it cannot code a class")

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, ctx: ClassContext) -> LossTerms:
        """The loss of one batch (inputs ``x``, training-class ids or 0/1 label rows ``y``, what the
        loss knows about the classes ``ctx``) and its terms by name, as floats for the log."""
        raise NotImplementedError(f"{type(self).__name__} must implement training_loss")

    def set_class_reference(self, train_vectors: torch.Tensor) -> None:
        """Called once before training with the training classes' semantic vectors."""

    def post_fit(self, x: torch.Tensor, y: torch.Tensor, ctx: ClassContext, device: torch.device) -> None:
        """A second training stage after the gradient steps (two-stage methods)."""

    def epoch_start(self, x: torch.Tensor, y: torch.Tensor, ctx: ClassContext, device: torch.device) -> None:
        """Before each training epoch, with the whole training set (ADSH's discrete code step)."""

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        for name in self.sized_by_training:
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def stage_state(self) -> dict[str, torch.Tensor]:
        """The weights of the first stage that ``shared_stage`` methods share (all by default)."""
        return {k: v.detach().cpu().clone() for k, v in self.state_dict().items()}


def check_declaration(cls: type[HashingMethod]) -> None:
    """What a registered method must declare, checked when it registers (a typo in a search key
    would otherwise surface only as an unknown-option error in the middle of a tuning run)."""
    name = cls.__name__
    if cls.family not in FAMILIES:
        raise TypeError(f"method {name}: family {cls.family!r} is not one of {', '.join(FAMILIES)}")
    if not cls.paper:
        raise TypeError(f"method {name} must name its paper (class attribute paper)")
    if not (dataclasses.is_dataclass(cls.Params) and issubclass(cls.Params, MethodParams)):
        raise TypeError(f"method {name}: Params must be a @dataclass deriving from MethodParams")
    fields = {f.name for f in dataclasses.fields(cls.Params)}
    clash = fields & set(SHARED_MODEL_KEYS)
    if clash:
        raise TypeError(f"method {name}: parameter(s) {', '.join(sorted(clash))} are shared settings of ModelConfig")
    train = {f"train.{f.name}" for f in dataclasses.fields(TrainConfig)}
    for key, space in cls.search.items():
        if key not in fields and key not in train:
            raise TypeError(f"method {name}: search key {key!r} is neither a parameter of its Params nor train.*")
        if not isinstance(space, Space):
            raise TypeError(f"method {name}: search[{key!r}] must be a Float, Int or Choice")
    for key, value in cls.reference.items():
        if key not in cls.search or not cls.search[key].contains(value):
            raise TypeError(f"method {name}: reference value {key}={value!r} lies outside its search space")
    for overrides in cls.ablations.values():
        for key in overrides:
            if not key.startswith("model.") or key[6:] not in fields:
                raise TypeError(f"method {name}: ablation key {key!r} is not a model.* parameter of its Params")


class MethodRegistry(Registry):
    """The method registry; a method's Params are registered with the configuration beside it."""

    def add(self, name: str, obj: Any, help: str = "") -> None:
        super().add(name, obj, help)
        register_params(name, obj.Params)

    def unregister(self, name: str) -> None:
        super().unregister(name)
        unregister_params(name)


#: method name -> its class; each method's file registers itself (``@METHODS.register("name")``)
#: and ``vsb2net.models`` imports every such file
METHODS: Registry = MethodRegistry("method", base=HashingMethod, check=check_declaration)


@torch.no_grad()
def in_batches(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, device: torch.device,
               batch_size: int = 1024) -> torch.Tensor | None:
    """``fn`` applied to ``x`` in batches on ``device``: float32 on the CPU (None for no input).
    The one batched forward pass: codes, a backbone's features, a frozen trunk's output."""
    out = [fn(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else None


def encode(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, device: torch.device,
           batch_size: int = 1024) -> np.ndarray:
    """Apply ``fn`` (e.g. ``model.hash_images``) in batches; returns float32 (N, K)."""
    out = in_batches(fn, x, device, batch_size)
    return out.numpy() if out is not None else np.zeros((0, 0), np.float32)
