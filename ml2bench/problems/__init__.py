"""Training problems, each one module registered by name in :data:`PROBLEMS`."""

from __future__ import annotations

from ml2bench.core.registry import Registry
from ml2bench.problems.base import Problem

PROBLEMS: Registry = Registry("problem")
register = PROBLEMS.register

# Each module registers its class on import (after PROBLEMS exists: they import ``register``).
from ml2bench.problems import mlp, resnet  # noqa: E402, F401
from ml2bench.problems.pinn import allen_cahn, burgers, klein_gordon, poisson  # noqa: E402, F401

__all__ = ["PROBLEMS", "Problem", "register"]
