"""Shared set-up of the benchmarks: small problem instances built as the runner builds them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from ml2bench.core.config import RunConfig
from ml2bench.core.objective import WorkCounter
from ml2bench.core.runner import derive_seeds
from ml2bench.methods import METHODS
from ml2bench.problems import PROBLEMS

# Every registered problem at its smoke size (Problem.smoke_params), every registered method
FAMILIES = tuple(PROBLEMS.names())
METHOD_NAMES = tuple(METHODS.names())


@dataclass
class Setup:
    problem: Any
    method: Any
    batches: list
    counter: WorkCounter
    config: RunConfig


def build(
    problem: str,
    method: str,
    *,
    problem_params: dict | None = None,
    method_params: dict | None = None,
    seed: int = 0,
    n_batches: int = 8,
) -> Setup:
    """Problem, hierarchy and method as :func:`ml2bench.core.runner.run` builds them (float32, CPU); skips
    the test when the combination does not exist."""
    if problem not in PROBLEMS:
        pytest.skip(f"problem {problem!r} not registered yet")
    if method not in METHODS:
        pytest.skip(f"method {method!r} not registered yet")
    config = RunConfig.from_dict(
        {
            "problem": problem,
            "method": method,
            "seed": seed,
            "problem_params": PROBLEMS.get(problem).smoke_params if problem_params is None else problem_params,
            "method_params": method_params or {},
        }
    )
    problem_cls, method_cls = PROBLEMS.get(problem), METHODS.get(method)
    seeds = derive_seeds(seed)
    prob = problem_cls(config.problem_params, seed=seeds["data"], device=torch.device("cpu"), dtype=torch.float32)
    levels = method_cls.levels_required(config.method_params)
    if levels > prob.max_levels():
        pytest.skip(f"method {method!r} needs {levels} levels; problem {problem!r} has {prob.max_levels()}")
    counter = WorkCounter()
    torch.manual_seed(seeds["init"])
    hierarchy = prob.hierarchy(levels, counter)
    meth = method_cls(hierarchy, hierarchy.fine.initial_x(), config.method_params)
    batch_size = None if method_cls.full_batch else problem_cls.default_batch_size
    order = torch.Generator().manual_seed(seeds["order"])
    batches: list = []
    while len(batches) < n_batches:
        batches.extend(prob.train_batches(batch_size, order))
    return Setup(prob, meth, batches[:n_batches], counter, config)


def reference_workload() -> float:
    """A fixed CPU workload (float32 matmuls + elementwise ops, one thread) for normalising timings."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(128, 128, generator=g)
    b = torch.randn(128, 128, generator=g)
    for _ in range(50):
        b = torch.tanh(a @ b) * 0.5
    return float(b[0, 0])


def interleaved_min(fns: dict[str, Any], repeats: int) -> dict[str, list[float]]:
    """Time each callable ``repeats`` times, alternating between them (drifts hit all alike)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return times
