"""Name → class registries for problems and methods, and the plugins that add to them.

A problem or a method is one class registered under its ``name``; configs, the CLI and the
Snakemake sweep refer to it by that name only. The two registries are
:data:`ml2bench.methods.METHODS` and :data:`ml2bench.problems.PROBLEMS` (created in each package's
``base`` module, filled when the package is imported).

Classes from outside the package register the same way, from

* an installed distribution's entry points, group ``ml2bench.methods`` or ``ml2bench.problems``
  (``mine = mypackage.mine:MyMethod``, or a module that registers on import); loaded at the
  registry's first lookup, so ``ml2bench`` itself never depends on them;
* a Python file: :func:`load_plugin` (``ml2bench run --plugin mine.py``, ``plugins:`` in a sweep
  config). The file registers its class with ``@register`` on import.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Generic, TypeVar

from ml2bench.core.params import ConfigError

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """A mapping from names to registered classes with helpful lookup errors.

    ``group``: the entry-point group whose plugins are loaded at the first lookup."""

    def __init__(self, kind: str, group: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self._items: dict[str, T] = {}
        self._entry_points_loaded = group is None

    def register(self, cls: T) -> T:
        """Class decorator: register ``cls`` under ``cls.name``."""
        name = getattr(cls, "name", None)
        if not name:
            raise TypeError(f"{cls!r} has no 'name' attribute to register it under")
        if name in self._items and self._items[name] is not cls:
            raise TypeError(f"{self.kind} '{name}' is registered twice ({self._items[name]!r} and {cls!r})")
        self._items[name] = cls
        return cls

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True  # once, also when one fails (its error names it)
        for ep in entry_points(group=self.group):
            try:
                obj = ep.load()
            except Exception as err:
                raise ConfigError(
                    f"{self.kind} plugin {ep.name!r} (entry point {ep.value!r}, group {self.group!r}) "
                    f"failed to load: {type(err).__name__}: {err}"
                ) from err
            if isinstance(obj, type):
                if getattr(obj, "name", None) != ep.name:
                    raise ConfigError(
                        f"{self.kind} plugin {ep.name!r} (group {self.group!r}): the class {obj.__qualname__} "
                        f"is named {getattr(obj, 'name', None)!r}; allowed: the entry point's name"
                    )
                self.register(obj)

    def get(self, name: str) -> T:
        self._load_entry_points()
        try:
            return self._items[name]
        except KeyError:
            allowed = ", ".join(sorted(self._items))
            raise ConfigError(f"unknown {self.kind} {name!r}; allowed: {allowed}") from None

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._items[n]) for n in self.names()]


def load_plugin(path: str | Path) -> ModuleType:
    """Import the Python file ``path`` once (it registers its classes on import) and return it.

    A missing file, or one that raises on import, is a :class:`ConfigError` naming the file. The
    module is named after the file's resolved path, so loading it again (the workflow and then
    ``ml2bench verify`` in one process) returns the same module instead of registering twice."""
    file = Path(path).expanduser().resolve()
    if not file.is_file() or file.suffix != ".py":
        raise ConfigError(f"plugin {str(path)!r}: no such Python file; allowed: the path of a .py file")
    digest = hashlib.sha256(str(file).encode()).hexdigest()[:12]
    name = f"ml2bench_plugin_{file.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise ConfigError(f"plugin {str(path)!r} failed to load: {type(err).__name__}: {err}") from err
    return module


def load_plugins(paths: list[str] | tuple[str, ...] | None) -> list[ModuleType]:
    """:func:`load_plugin` for each path (``--plugin`` options, a sweep config's ``plugins:``)."""
    return [load_plugin(p) for p in paths or ()]
