"""Hashing methods and the backbones they share.

``METHODS`` maps a method name to a :class:`~vsb2net.models.base.HashingMethod` subclass; the
class declares everything the rest of the system needs (what it provides, the options it reads,
its tuning grid, ablations, family and paper).  Each method lives in one file and registers
itself; importing this package registers them all.  :func:`create_method` builds one and
:func:`variants` lists the benchmark variants (each method, then its ablations).

Adding a method: one file here that registers a ``HashingMethod`` subclass, plus its name in the
import line below; ``vsb2net tune``, ``vsb2net benchmark``, RESULTS.md and docs/METHODS.md pick it
up from the registry (CONTRIBUTING.md, "Adding a method").
"""
from ..config import ModelConfig
from . import (  # noqa: F401
    adsh,
    backbones,
    csq,
    dpn,
    dpsh,
    dsh,
    efficientnet_lite,
    greedyhash,
    hashnet,
    itq,
    lsh,
    orthohash,
    random_codes,
    sitnet,
    torchvision_backbones,
    tsk,
    vsb2net,
)
from .backbones import BACKBONES, build_backbone, images_to_tensor
from .base import FAMILIES, METHODS, HashingMethod
from .relations import ClassContext, lle_weights


def create_method(name: str, cfg: ModelConfig, in_shape: tuple[int, ...], semantic_dim: int) -> HashingMethod:
    """A new, untrained ``name`` method (timm's ``create_model``); ``cfg`` is its ``ModelConfig``."""
    return METHODS.get(name)(cfg, tuple(in_shape), int(semantic_dim))


#: where VSB2-Net stands among the methods: listed first, compared with every other
REFERENCE = "vsb2net"


def variants() -> dict[str, tuple[str, dict[str, object]]]:
    """Benchmark variant -> (registered method, config overrides): every method under its own
    name (VSB2-Net first, then by family as :data:`FAMILIES` lists them, then by name), and
    ``NAME-suffix`` for each ablation."""
    families = list(FAMILIES)
    names = sorted(METHODS.names(), key=lambda n: (n != REFERENCE, families.index(METHODS.get(n).family), n))
    out: dict[str, tuple[str, dict[str, object]]] = {}
    for name in names:
        out[name] = (name, {})
        for suffix, overrides in METHODS.get(name).ablations.items():
            out[f"{name}-{suffix}"] = (name, dict(overrides))
    return out


__all__ = ["METHODS", "REFERENCE", "HashingMethod", "BACKBONES", "build_backbone", "images_to_tensor", "ClassContext",
           "lle_weights", "create_method", "variants"]
