"""Restricted unpickling for the pickled data files some datasets ship (Animal-MNIST, CIFAR).

Unpickling can run arbitrary code: a pickle names callables that are called on load.  A pickle of
numpy arrays and plain containers (dicts, lists, bytes, strings, numbers) needs only the globals
in :data:`_ALLOWED_GLOBALS`; :class:`_NumpyOnlyUnpickler` refuses every other one with a
:class:`VsbError`, before anything is imported or called.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import pickle

from vsb2net.errors import VsbError

# A numpy array pickle needs only these names; anything else is refused.  ``_frombuffer`` appears
# in protocol-5 pickles and ``_codecs.encode`` (str -> bytes) in protocol-2 ones; both are pure.
_ALLOWED_GLOBALS = {
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of numpy array pickles.

    ``path`` (a path or any description, e.g. ``archive.tar.gz:member``) names the file in error
    messages.  ``encoding`` is passed to :class:`pickle.Unpickler`: ``"bytes"`` reads Python 2
    ``str`` objects as bytes (how the official CIFAR pickles must be read).
    """

    def __init__(self, fh, path: str | os.PathLike, *, encoding: str = "ASCII"):
        super().__init__(fh, encoding=encoding)
        self._path = path

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise VsbError(
                f"{self._path}: the pickle refers to {module}.{name}, which is not part of a "
                "numpy array; refusing to load it (pickles can run code). Use a trusted copy of "
                "the file."
            )
        if module.startswith("numpy.core.") and importlib.util.find_spec("numpy._core"):
            module = "numpy._core." + module[len("numpy.core."):]  # numpy 2 renamed numpy.core
        return getattr(importlib.import_module(module), name)

    def persistent_load(self, pid):  # pragma: no cover - no legitimate array pickle uses it
        raise VsbError(f"{self._path}: pickle uses persistent ids; refusing to load it.")
