"""Declared, validated hyper-parameters.

Every problem and method declares its hyper-parameters as :class:`Param` objects so that
configs are data: a typo or an out-of-range value is rejected *before* any training starts,
with one message that names the bad key and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


class UnsupportedModelError(ConfigError):
    """A model a method cannot train as given (raised before its first evaluation; the message names
    the module and the fix)."""


@dataclass(frozen=True)
class Param:
    """One hyper-parameter: its type, default, admissible range and a one-line doc."""

    name: str
    type: type | tuple[type, ...]
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    choices: Sequence[Any] | None = None
    nullable: bool = False
    finite: bool = True  # NaN and ±inf pass every comparison test, so they are rejected explicitly
    # False for an option added after runs were recorded: at its default it stays out of the config
    # hash (ml2bench.core.config.RunConfig.hash), so those runs and their checkpoints keep their hashes
    hashed_at_default: bool = True

    def describe_allowed(self) -> str:
        """Human-readable admissible set, used in error messages and ``ml2bench list``."""
        if self.choices is not None:
            allowed = "one of " + ", ".join(repr(c) for c in self.choices)
        else:
            tname = _type_name(self.type)
            bounds = []
            if self.low is not None:
                bounds.append(f"{'>=' if self.low_inclusive else '>'} {self.low}")
            if self.high is not None:
                bounds.append(f"<= {self.high}")
            allowed = tname + (" " + " and ".join(bounds) if bounds else "")
        if self.nullable:
            allowed += " or null"
        return allowed

    def validate(self, value: Any, owner: str) -> Any:
        """Return ``value`` coerced to the declared type, or raise :class:`ConfigError`."""
        where = f"{owner}: parameter '{self.name}'"
        if value is None:
            if self.nullable:
                return None
            raise ConfigError(f"{where} must not be null; allowed: {self.describe_allowed()}")
        coerced = _coerce(value, self.type)
        if coerced is _BAD:
            raise ConfigError(
                f"{where} = {value!r} has the wrong type ({type(value).__name__}); allowed: {self.describe_allowed()}"
            )
        value = coerced
        if self.finite and isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where} = {value!r} is not a finite number; allowed: finite {self.describe_allowed()}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{where} = {value!r} is not allowed; allowed: {self.describe_allowed()}")
        if self.low is not None and (value < self.low or (not self.low_inclusive and value == self.low)):
            raise ConfigError(f"{where} = {value!r} is out of range; allowed: {self.describe_allowed()}")
        if self.high is not None and value > self.high:
            raise ConfigError(f"{where} = {value!r} is out of range; allowed: {self.describe_allowed()}")
        return value


class _Bad:
    pass


_BAD = _Bad()


def _type_name(t: type | tuple[type, ...]) -> str:
    if isinstance(t, tuple):
        return " or ".join(x.__name__ for x in t)
    return t.__name__


def _coerce(value: Any, t: type | tuple[type, ...]) -> Any:
    """Accept ints and numeric strings for floats (YAML writes ``1`` for ``1.0`` and reads
    ``1e-3`` as a string); never bools for numbers."""
    types = t if isinstance(t, tuple) else (t,)
    if isinstance(value, bool):
        return value if bool in types else _BAD
    for ty in types:
        if isinstance(value, ty):
            return value
    if float in types and isinstance(value, int):
        try:
            return float(value)
        except OverflowError:  # an int beyond the float range (10**400) is no float
            return math.inf
    if float in types and isinstance(value, str):
        # PyYAML (YAML 1.1) reads ``1e-3`` as a string; accept what is clearly a number
        try:
            return float(value)
        except ValueError:
            return _BAD
    return _BAD


@dataclass(frozen=True)
class ParamSpec:
    """An ordered collection of :class:`Param` with validation of whole dicts."""

    params: tuple[Param, ...] = field(default_factory=tuple)

    def __iter__(self) -> Iterable[Param]:
        return iter(self.params)

    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def validate(self, given: Mapping[str, Any] | None, owner: str) -> dict[str, Any]:
        """Defaults overlaid with ``given``; unknown keys and bad values raise ConfigError."""
        given = dict(given or {})
        by_name = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(by_name))
        if unknown:
            allowed = ", ".join(self.names()) or "(none)"
            raise ConfigError(f"{owner}: unknown parameter(s) {', '.join(map(repr, unknown))}; allowed: {allowed}")
        out = {}
        for p in self.params:
            out[p.name] = p.validate(given[p.name], owner) if p.name in given else p.default
        return out


def spec(*params: Param) -> ParamSpec:
    """Shorthand used by problem and method modules: ``params = spec(Param(...), ...)``."""
    return ParamSpec(tuple(params))
