"""Hashing methods and the backbones they share.

``METHODS`` maps a method name to an ``nn.Module`` class built as ``cls(model_cfg, in_shape,
semantic_dim)`` that provides ``hash_images``, ``hash_classes`` and ``training_loss``.  Each method
lives in one file and registers itself; importing this package registers them all.
"""
from ..registry import Registry

METHODS: Registry = Registry("method")

from . import backbones, csq, itq, lsh, random_codes, sitnet, torchvision_backbones, tsk, vsb2net  # noqa: E402,F401  (registration)
from .backbones import BACKBONES, build_backbone, images_to_tensor  # noqa: E402
from .vsb2net import ClassContext, lle_weights  # noqa: E402

__all__ = ["METHODS", "BACKBONES", "build_backbone", "images_to_tensor", "ClassContext", "lle_weights"]
