"""Per-step cost of every registered method on every registered problem (at its smoke size).

One benchmark round = one ``method.step(batch)`` from a freshly built method (the second step, after
one untimed warm-up step), i.e. what the runner's clock measures. ``extra_info`` records the work
units charged per step, so a change in time can be told apart from a change in the amount of work.
``test_reference_workload`` times a fixed matmul loop in the same session:
``tests/benchmarks/normalised_compare.py`` divides every timing by it before comparing against the
baseline (noise-robust on shared machines)."""

from __future__ import annotations

import pytest
from _bench_util import FAMILIES, METHOD_NAMES, build, reference_workload


def test_reference_workload(benchmark):
    benchmark.group = "reference"
    benchmark(reference_workload)


ROUNDS = 7


@pytest.mark.parametrize("problem", FAMILIES)
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_step(benchmark, problem, method):
    """Times the *second* step from a freshly built method in every round, so all rounds measure
    the same work: a method kept across rounds converges, and trust-region steps at a stationary
    point cost next to nothing (that made the comparison flag +47% on tr/resnet)."""
    build(problem, method)  # skips missing combinations before the benchmark fixture is used
    charged: list[float] = []

    def fresh():
        s = build(problem, method)
        s.method.step(s.batches[0])  # lazy state, allocations, first curvature pair
        charged.append(-s.counter.work_units)
        fresh.counter, fresh.batch_size = s.counter, s.batches[0].size
        return (s.method, s.batches[1 % len(s.batches)]), {}

    def one_step(m, batch):
        m.step(batch)
        charged[-1] += fresh.counter.work_units

    benchmark.group = f"step:{problem}"
    benchmark.pedantic(one_step, setup=fresh, rounds=ROUNDS, iterations=1)
    benchmark.extra_info.update({"problem": problem, "method": method, "batch_size": fresh.batch_size})
    benchmark.extra_info["work_units_per_step"] = sum(charged) / len(charged)
