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
* ``options``: the ``model.*`` options the method reads besides :data:`SHARED_OPTIONS` (None: it
  may read any).  A benchmark cell's settings hash leaves the others out, so an option only
  VSB2-Net reads does not recompute the baselines' cells; ``tests/test_baselines.py`` checks each
  declaration by changing every option left out and comparing the trained codes.
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

#: ``model.*`` options every method reads: which method, which backbone, and the code length
SHARED_OPTIONS = frozenset({"method", "backbone", "backbone_weights", "finetune_blocks", "bits", "feature_dim"})


class HashingMethod(nn.Module):
    #: has a semantic branch: ``hash_classes`` codes class vectors into the image Hamming space
    codes_classes: bool = False
    #: trained by gradient steps on ``training_loss`` (False: codes need no training, e.g. random)
    trainable: bool = True
    #: codes the output of ``model.backbone`` (False: codes the raw input, e.g. random), so the
    #: pipeline hands it a frozen trunk's cached output only when True
    uses_backbone: bool = True
    #: the ``model.*`` options read besides SHARED_OPTIONS; None = any of them (the safe default)
    options: ClassVar[frozenset[str] | None] = None

    def hash_images(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement hash_images")

    def hash_classes(self, vectors: torch.Tensor) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} has no semantic branch (codes_classes is False): "
                        "it cannot code a class")

    def training_loss(self, x: torch.Tensor, y: torch.Tensor, ctx):
        raise NotImplementedError(f"{type(self).__name__} must implement training_loss")

    def set_class_reference(self, train_vectors: torch.Tensor) -> None:
        """Called once before training with the training classes' semantic vectors."""

    def post_fit(self, x: torch.Tensor, y: torch.Tensor, ctx, device) -> None:
        """A second training stage after the gradient steps (two-stage methods)."""
