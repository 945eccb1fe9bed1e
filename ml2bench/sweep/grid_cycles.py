"""V-cycle counts of a multilevel method on the classical grid test problems, per grid size and
random start: the numbers behind the level-independence claims (``claims_grid:`` in a sweep config,
``table: grid_cycles`` in a claim; read by :mod:`ml2bench.analysis.claims`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ml2bench.core.records import RUN_KEYS

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


def grid_cycles(spec: Mapping[str, Any], seeds: Sequence[int]) -> pd.DataFrame:
    """V-cycles of a multilevel method to ‖g‖ ≤ tol ‖g₀‖ on a grid test problem
    (:mod:`ml2bench.problems.grid.testproblems`), per grid size and random start u₀ ~ U[−1, 1] (seed):
    the numbers behind the level-independence claim. ``spec``: id, kind (one of
    ``testproblems.KINDS``: poisson, fas, cubic, minsurf, scherk), dim, sizes, method (rmtr | mgopt),
    params, tol (1e-8), max_cycles (40). Not reached: +inf.
    Rows: problem_id = id, method, point = ``n~<size>``, seed, cycles."""
    import torch

    from ml2bench.methods import METHODS
    from ml2bench.problems.grid.testproblems import grid_hierarchy

    rows = []
    for n in spec["sizes"]:
        for seed in seeds:
            H, batch = grid_hierarchy(spec["kind"], int(n), int(spec.get("dim", 1)))
            x0 = 2 * torch.rand(H.fine.n, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64) - 1
            g0 = float(H.fine.loss_grad(x0, batch)[1].norm())
            hp = dict(spec.get("params") or {}, levels=H.levels, grad_tol=float(spec.get("tol", 1e-8)) * g0)
            method = METHODS.get(spec["method"])(H, x0, hp)
            cycles = math.inf
            for k in range(1, int(spec.get("max_cycles", 40)) + 1):
                result = method.step(batch)
                if result.converged:
                    cycles = float(k)
                    break
                if result.stop_reason:
                    break
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
    frames = [grid_cycles(spec, config.get("seeds", [0, 1, 2, 3, 4])) for spec in config.get("claims_grid") or []]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RUN_KEYS + list(MEASURES))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    return Path(out)
