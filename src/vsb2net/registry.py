"""A small name -> factory registry (timm-style): one file per component registers itself."""
from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from .errors import VsbError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> components of one kind (methods, backbones, index backends, datasets).

    ``base``: every registered class must derive from it; ``check``: what a registered class
    must declare; ``key``: how a name is normalised, on registration and on lookup (datasets
    match ``CIFAR_10`` to ``cifar-10``).
    """

    def __init__(self, kind: str, base: type | None = None, check: Callable[[type], None] | None = None,
                 key: Callable[[str], str] | None = None):
        self.kind = kind
        self.key = key or (lambda name: name)
        #: every registered class must derive from it (its interface is declared, not probed)
        self.base = base
        #: checks what a registered class declares (raises TypeError)
        self.check = check
        self._items: dict[str, T] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, help: str = "") -> Callable[[T], T]:
        def deco(obj: T) -> T:
            self.add(name, obj, help)
            return obj

        return deco

    def add(self, name: str, obj: T, help: str = "") -> None:
        name = self.key(name)
        if name in self._items:
            raise RuntimeError(f"{self.kind} {name!r} registered twice")
        if self.base is not None and not (isinstance(obj, type) and issubclass(obj, self.base)):
            raise TypeError(f"{self.kind} {name!r} must be a subclass of {self.base.__name__}")
        if self.check is not None:
            self.check(obj)  # type: ignore[arg-type]
        self._items[name] = obj
        self._help[name] = help or (getattr(obj, "__doc__", "") or "").strip().split("\n")[0]

    def unregister(self, name: str) -> None:
        """Forget ``name`` (a component registered for a while, e.g. by a test)."""
        self._items.pop(self.key(name), None)
        self._help.pop(self.key(name), None)

    def get(self, name: str) -> T:
        key = self.key(str(name))
        if key not in self._items:
            raise VsbError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._items)) or '(none)'}.")
        return self._items[key]

    def values(self) -> list[T]:
        return [self._items[k] for k in sorted(self._items)]

    def names(self) -> list[str]:
        return sorted(self._items)

    def help(self, name: str) -> str:
        return self._help[name]

    def __contains__(self, name: str) -> bool:
        return self.key(str(name)) in self._items
