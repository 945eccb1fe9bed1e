"""Training methods, each one module registered by name in :data:`METHODS`."""
from __future__ import annotations

import importlib

from ..registry import Registry
from .base import Method, StepResult

METHODS: Registry = Registry("method")
register = METHODS.register

# Each module registers its class on import; the list is the single place naming them.
_MODULES = ("sgd", "adam", "lbfgs", "tr", "rmtr", "mgopt", "schwarz")
for _name in _MODULES:
    importlib.import_module(f"{__name__}.{_name}")

__all__ = ["METHODS", "Method", "StepResult", "register"]
