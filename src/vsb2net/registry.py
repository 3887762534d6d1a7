"""A small name -> factory registry (timm-style): one file per component registers itself."""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

from .errors import VsbError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, base: type | None = None, check: Callable[[type], None] | None = None):
        self.kind = kind
        #: every registered class must derive from it (its interface is declared, not probed)
        self.base = base
        #: checks what a registered class declares (raises TypeError)
        self.check = check
        self._items: dict[str, T] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, help: str = "") -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise RuntimeError(f"{self.kind} {name!r} registered twice")
            if self.base is not None and not (isinstance(obj, type) and issubclass(obj, self.base)):
                raise TypeError(f"{self.kind} {name!r} must be a subclass of {self.base.__name__}")
            if self.check is not None:
                self.check(obj)
            self._items[name] = obj
            self._help[name] = help or (getattr(obj, "__doc__", "") or "").strip().split("\n")[0]
            return obj

        return deco

    def unregister(self, name: str) -> None:
        """Forget ``name`` (a component registered for a while, e.g. by a test)."""
        self._items.pop(name, None)
        self._help.pop(name, None)

    def get(self, name: str) -> T:
        if name not in self._items:
            raise VsbError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._items))}.")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def help(self, name: str) -> str:
        return self._help[name]

    def __contains__(self, name: str) -> bool:
        return name in self._items
