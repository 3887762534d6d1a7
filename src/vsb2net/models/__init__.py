"""Hashing methods and the backbones they share.

``METHODS`` maps a method name to a :class:`~vsb2net.models.base.HashingMethod` subclass built as
``cls(model_cfg, in_shape, semantic_dim)``; the base class declares what a method provides
(``hash_images``, ``training_loss``, a semantic branch ``hash_classes`` when ``codes_classes``).
Each method lives in one file and registers itself; importing this package registers them all.
"""
from ..registry import Registry
from .base import HashingMethod

METHODS: Registry = Registry("method", base=HashingMethod)

from . import backbones, csq, efficientnet_lite, itq, lsh, random_codes, sitnet, torchvision_backbones, tsk, vsb2net  # noqa: E402,F401  (registration)
from .backbones import BACKBONES, build_backbone, images_to_tensor  # noqa: E402
from .vsb2net import ClassContext, lle_weights  # noqa: E402

__all__ = ["METHODS", "HashingMethod", "BACKBONES", "build_backbone", "images_to_tensor", "ClassContext", "lle_weights"]
