"""Per-step cost of every registered method on every problem family (small sizes).

One benchmark round = one ``method.step(batch)`` (cycling through a few fixed batches), i.e. what
the runner's clock measures. ``extra_info`` records the work units charged per step, so a change
in time can be told apart from a change in the amount of work. ``test_reference_workload`` times a
fixed matmul loop in the same session: ``tests/benchmarks/normalised_compare.py`` divides every
timing by it before comparing against the baseline (noise-robust on shared machines).
"""
from __future__ import annotations

import itertools

import pytest
from _bench_util import FAMILIES, build, reference_workload

from ml2bench.methods import METHODS

METHOD_NAMES = sorted(set(METHODS.names()) | {"sgd", "adam", "lbfgs", "tr", "rmtr", "mgopt", "schwarz"})


def test_reference_workload(benchmark):
    benchmark.group = "reference"
    benchmark(reference_workload)


@pytest.mark.parametrize("problem", FAMILIES)
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_step(benchmark, problem, method):
    s = build(problem, method)
    cycle = itertools.cycle(s.batches)
    step = s.method.step
    step(next(cycle))  # first step outside the timing (lazy state, allocations)
    w0, calls = s.counter.work_units, [0]

    def one_step():
        calls[0] += 1
        step(next(cycle))

    benchmark.group = f"step:{problem}"
    benchmark.extra_info.update({"problem": problem, "method": method, "batch_size": s.batches[0].size})
    benchmark(one_step)
    benchmark.extra_info["work_units_per_step"] = (s.counter.work_units - w0) / max(calls[0], 1)
