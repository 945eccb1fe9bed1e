"""Name → class registries for problems and methods.

A problem or a method is one module that registers its class under a name; configs, the
CLI and the Snakemake sweep refer to it by that name only. Registries are plain objects
(no module-level mutable state beyond the two instances in ``problems`` and ``methods``),
populated when their package is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ml2bench.core.params import ConfigError

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """A mapping from names to registered classes with helpful lookup errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, cls: T) -> T:
        """Class decorator: register ``cls`` under ``cls.name``."""
        name = getattr(cls, "name", None)
        if not name:
            raise TypeError(f"{cls!r} has no 'name' attribute to register it under")
        if name in self._items and self._items[name] is not cls:
            raise TypeError(f"{self.kind} '{name}' is registered twice")
        self._items[name] = cls
        return cls

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            allowed = ", ".join(sorted(self._items))
            raise ConfigError(f"unknown {self.kind} {name!r}; allowed: {allowed}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._items[n]) for n in self.names()]


def registrar(registry: Registry) -> Callable[[T], T]:
    return registry.register
