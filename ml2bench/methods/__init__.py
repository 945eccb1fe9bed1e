"""Training methods, each one module registered by name in :data:`METHODS`."""

from __future__ import annotations

from ml2bench.core.registry import Registry
from ml2bench.methods.base import Method, StepResult

METHODS: Registry = Registry("method")
register = METHODS.register

# Each module registers its class on import (after METHODS exists: they import ``register``).
from ml2bench.methods import adam, lbfgs, mgopt, rmtr, schwarz, sgd, tr  # noqa: E402, F401

__all__ = ["METHODS", "Method", "StepResult", "register"]
