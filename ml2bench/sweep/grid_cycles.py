"""V-cycles of a multilevel method on the classical grid test problems: the one in-process loop
behind the level-independence claims (``claims_grid:`` in a sweep config, ``table: grid_cycles``
in a claim; read by :mod:`ml2bench.analysis.claims`) and the grid benchmark
(``python -m ml2bench.bench multilevel --grid``).

The grid problems (:mod:`ml2bench.problems.grid.testproblems`) are hierarchies, not registered
problems, so these runs drive the method directly, one ``step`` = ``cycles_per_step`` V-cycles
(1 by default), until the method's own relative criterion ‖g‖ ≤ ``rtol`` ‖g₀‖ holds
(``grad_rtol``; g₀ is the gradient at the start).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ml2bench.core.records import RUN_KEYS
from ml2bench.core.stop import StopReason

MEASURES = ("cycles",)  # the table's columns besides RUN_KEYS


def point(size: int) -> str:
    """Point name of one grid size (a claim names it as ``method[n~<size>]``)."""
    return f"n~{size}"


def grid_points(config: Mapping[str, Any]) -> dict[str, dict[str, set[str]]]:
    """{id: {method: point names}} of the config's ``claims_grid`` entries (what a claim may name)."""
    return {
        str(spec["id"]): {str(spec["method"]): {point(n) for n in spec["sizes"]}}
        for spec in config.get("claims_grid") or []
    }


@dataclass
class GridRun:
    """One run: ``cycles`` to the criterion (None: not reached), the work units charged, why it
    ended (``grad_tol``, the method's stop, or ``budget:iterations`` after ``max_cycles``), the final
    ‖g‖/‖g₀‖, and the method (its iterate ``method.x``)."""

    cycles: int | None
    work_units: float
    stop_reason: StopReason
    rel_grad: float
    method: Any


def grid_cycles(
    method: str,
    kind: str,
    n: int,
    params: Mapping[str, Any] | None = None,
    *,
    dim: int = 2,
    rtol: float = 1e-8,
    max_cycles: int = 60,
    seed: int | None = 0,
    scherk_a: float | None = None,
) -> GridRun:
    """Run ``method`` (rmtr | mgopt) on the grid problem ``kind`` with nᵈ unknowns, all levels down
    to one node per dimension, float64, until ‖g‖ ≤ ``rtol`` ‖g₀‖ or ``max_cycles`` steps.

    Start: u₀ ~ U[−1, 1] drawn with ``seed`` (every frequency present); ``seed=None``: u₀ = the
    problem's own start (the zero interior; the minimal surfaces ``minsurf`` and ``scherk`` need
    it: a random interior is not smooth). ``params`` update the method's defaults; ``scherk_a``:
    the steepness of ``scherk`` (default :data:`~ml2bench.problems.grid.testproblems.SCHERK_A`)."""
    import torch

    from ml2bench.methods import METHODS
    from ml2bench.problems.grid.testproblems import SCHERK_A, grid_hierarchy

    H, batch = grid_hierarchy(kind, int(n), int(dim), scherk_a=SCHERK_A if scherk_a is None else scherk_a)
    if seed is None:
        x0 = H.fine.initial_x()
    else:
        x0 = 2 * torch.rand(H.fine.n, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64) - 1
    m = METHODS.get(method)(H, x0, {"levels": H.levels, **(params or {}), "grad_rtol": float(rtol)})
    if m.uses_hvp(m.hp):  # as the runner: the products' cost measured before, uncharged
        H.measure_hvp_costs(batch)
    cycles, stop = None, StopReason.BUDGET_ITERATIONS
    for k in range(1, int(max_cycles) + 1):
        result = m.step(batch)
        if result.stops:
            cycles, stop = (k if result.converged else None), result.stop_reason
            break
    return GridRun(cycles, H.counter.work_units, stop, float(m._g.norm()) / m.monitor.g0, m)


def grid_cycle_table(spec: Mapping[str, Any], seeds: Sequence[int]) -> pd.DataFrame:
    """V-cycles per grid size and random start (seed) of one ``claims_grid`` entry: id, kind (one of
    ``testproblems.KINDS``), dim (1), sizes, method (rmtr | mgopt), params, tol (1e-8),
    max_cycles (40). Not reached: +inf. Rows: problem_id = id, method, point = ``n~<size>``, seed,
    cycles."""
    rows = []
    for n in spec["sizes"]:
        for seed in seeds:
            run = grid_cycles(
                spec["method"],
                spec["kind"],
                n,
                spec.get("params"),
                dim=int(spec.get("dim", 1)),
                rtol=float(spec.get("tol", 1e-8)),
                max_cycles=int(spec.get("max_cycles", 40)),
                seed=int(seed),
            )
            cycles = math.inf if run.cycles is None else float(run.cycles)
            rows.append(
                {
                    "problem_id": spec["id"],
                    "method": spec["method"],
                    "point": point(n),
                    "seed": int(seed),
                    "cycles": cycles,
                }
            )
    return pd.DataFrame(rows, columns=RUN_KEYS + list(MEASURES))


def write_grid_cycles(config: Mapping[str, Any], out: str | Path) -> Path:
    """``grid_cycles.csv`` for the config's ``claims_grid`` entries (seeds: the config's seeds)."""
    frames = [grid_cycle_table(spec, config.get("seeds", [0, 1, 2, 3, 4])) for spec in config.get("claims_grid") or []]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RUN_KEYS + list(MEASURES))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    return Path(out)
