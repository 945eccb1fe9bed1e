"""Training methods, each one module registered by name in :data:`METHODS`.

Importing the package registers the built-in methods; entry points (group ``ml2bench.methods``)
and plugin files add others (:mod:`ml2bench.core.registry`).
"""

from __future__ import annotations

from ml2bench.methods import adam, lbfgs, mgopt, rmtr, schwarz, sgd, tr  # noqa: F401  (each registers its class)
from ml2bench.methods.base import METHODS, Method, SmokeRun, StepResult, register

__all__ = ["METHODS", "Method", "SmokeRun", "StepResult", "register"]
