"""Training problems, each one module registered by name in :data:`PROBLEMS`.

Importing the package registers the built-in problems; entry points (group ``ml2bench.problems``)
and plugin files add others (:mod:`ml2bench.core.registry`).
"""

from __future__ import annotations

from ml2bench.problems import mlp, resnet  # noqa: F401  (each registers its class)
from ml2bench.problems.base import PROBLEMS, Problem, register
from ml2bench.problems.pinn import allen_cahn, burgers, klein_gordon, poisson  # noqa: F401

__all__ = ["PROBLEMS", "Problem", "register"]
