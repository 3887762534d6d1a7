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
"""
from __future__ import annotations

import torch
from torch import nn


class HashingMethod(nn.Module):
    #: has a semantic branch: ``hash_classes`` codes class vectors into the image Hamming space
    codes_classes: bool = False
    #: trained by gradient steps on ``training_loss`` (False: codes need no training, e.g. random)
    trainable: bool = True
    #: codes the output of ``model.backbone`` (False: codes the raw input, e.g. random), so the
    #: pipeline hands it a frozen trunk's cached output only when True
    uses_backbone: bool = True

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
