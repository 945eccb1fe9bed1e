"""What a contributor implements or calls, in one import (CONTRIBUTING.md walks through it).

A **method** subclasses :class:`Method` (``name``, ``description``, ``params = spec(Param(...))``,
``smoke = (SmokeRun(...),)``, ``step(batch) -> StepResult``) and registers with
:func:`register_method`; a **problem** subclasses :class:`Problem` (data, loss, ``evaluate``,
``build_model`` per level, ``smoke_params``) and registers with :func:`register_problem`. Methods
evaluate only through the :class:`Objective` objects of their :class:`Hierarchy` (that is the
work accounting) and say why they stop with a :class:`StopReason`. A file of such classes runs
without changing ml2bench: ``ml2bench run --plugin mine.py --method mine ...``, ``plugins:`` in a
sweep config, or an entry point (groups ``ml2bench.methods``, ``ml2bench.problems``).

    from ml2bench.api import Method, Param, SmokeRun, StepResult, register_method, spec
"""

from __future__ import annotations

from ml2bench.core.config import BUDGET, RunConfig
from ml2bench.core.hierarchy import Hierarchy, Transfer
from ml2bench.core.objective import Batch, FModel, Objective, WorkCounter
from ml2bench.core.params import ConfigError, Param, ParamSpec, spec
from ml2bench.core.registry import load_plugin
from ml2bench.core.runner import RunResult, run
from ml2bench.core.stop import StopReason
from ml2bench.methods import METHODS, Method, SmokeRun, StepResult
from ml2bench.methods import register as register_method
from ml2bench.problems import PROBLEMS, Problem
from ml2bench.problems import register as register_problem

__all__ = [
    "BUDGET",
    "METHODS",
    "PROBLEMS",
    "Batch",
    "ConfigError",
    "FModel",
    "Hierarchy",
    "Method",
    "Objective",
    "Param",
    "ParamSpec",
    "Problem",
    "RunConfig",
    "RunResult",
    "SmokeRun",
    "StepResult",
    "StopReason",
    "Transfer",
    "WorkCounter",
    "load_plugin",
    "register_method",
    "register_problem",
    "run",
    "spec",
]
