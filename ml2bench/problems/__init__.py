"""Training problems, each one module registered by name in :data:`PROBLEMS`."""
from __future__ import annotations

import importlib

from ..registry import Registry
from .base import Problem

PROBLEMS: Registry = Registry("problem")
register = PROBLEMS.register

# Each module registers its class on import; the list is the single place naming them.
_MODULES = ("mlp", "resnet", "pinn_poisson", "pinn_burgers", "pinn_allen_cahn", "pinn_klein_gordon")
for _name in _MODULES:
    importlib.import_module(f"{__name__}.{_name}")

__all__ = ["PROBLEMS", "Problem", "register"]
