"""Badly scaled unconstrained test problems of Moré, Garbow & Hillstrom (1981), as objectives
the methods run on, and a comparison of ``lbfgs`` and ``tr`` with scipy's L-BFGS-B.

Why: these are the standard problems where a quasi-Newton model becomes badly conditioned, where
a line search or trust region meets round-off, and where a method can claim convergence far from
a minimiser; each has a known minimum f* and a standard start (MGH numbers in brackets).

``python -m ml2bench.bench.mgh`` prints, per problem and method, the work until the first
evaluated point with f − f* ≤ ``--target`` (work units: one per evaluation, a Hessian-vector
product at its measured cost; scipy's evaluations counted the same way), the totals, the final
f, the stop reason, and whether the method claimed convergence.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ml2bench.core.hierarchy import Hierarchy
from ml2bench.core.objective import Objective, WorkCounter
from ml2bench.core.stop import StopReason


@dataclass(frozen=True)
class MGHProblem:
    name: str
    x0: tuple[float, ...]
    fstar: float
    f: Callable[[Tensor], Tensor]


def _rosenbrock(x: Tensor) -> Tensor:  # [1]
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


def _powell_badly_scaled(x: Tensor) -> Tensor:  # [3]
    return (1e4 * x[0] * x[1] - 1) ** 2 + (torch.exp(-x[0]) + torch.exp(-x[1]) - 1.0001) ** 2


def _brown_badly_scaled(x: Tensor) -> Tensor:  # [4]
    return (x[0] - 1e6) ** 2 + (x[1] - 2e-6) ** 2 + (x[0] * x[1] - 2) ** 2


def _beale(x: Tensor) -> Tensor:  # [5]
    return sum((yi - x[0] * (1 - x[1] ** i)) ** 2 for i, yi in ((1, 1.5), (2, 2.25), (3, 2.625)))


def _wood(x: Tensor) -> Tensor:  # [14]
    return (
        100 * (x[1] - x[0] ** 2) ** 2
        + (1 - x[0]) ** 2
        + 90 * (x[3] - x[2] ** 2) ** 2
        + (1 - x[2]) ** 2
        + 10.1 * ((x[1] - 1) ** 2 + (x[3] - 1) ** 2)
        + 19.8 * (x[1] - 1) * (x[3] - 1)
    )


PROBLEMS = {
    p.name: p
    for p in (
        MGHProblem("rosenbrock", (-1.2, 1.0), 0.0, _rosenbrock),
        MGHProblem("powell_badly_scaled", (0.0, 1.0), 0.0, _powell_badly_scaled),
        MGHProblem("brown_badly_scaled", (1.0, 1.0), 0.0, _brown_badly_scaled),
        MGHProblem("beale", (1.0, 1.0), 0.0, _beale),
        MGHProblem("wood", (-3.0, -1.0, -3.0, -1.0), 0.0, _wood),
    )
}


@dataclass
class UnitBatch:
    x: Tensor
    size: int = 1


class _Point(nn.Module):
    def __init__(self, x0: tuple[float, ...], dtype: torch.dtype) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(x0, dtype=dtype))

    def forward(self, inp: Tensor) -> Tensor:  # noqa: ARG002 - the point needs no input
        return self.p


def full_set(scale: float = 1.0) -> dict[str, MGHProblem]:
    """All 35 MGH problems (:mod:`ml2bench.bench.mgh_problems`; Watson and the extended Rosenbrock
    at two sizes), started at ``scale``·x₀ (MGH's practice: 1, 10, 100)."""
    from ml2bench.bench.mgh_problems import TABLE

    def sum_of_squares(r):
        return lambda x: (r(x) ** 2).sum()

    return {
        name: MGHProblem(name, tuple(scale * v for v in x0), fstar, sum_of_squares(r))
        for name, _, x0, fstar, r in TABLE
    }


def _lookup(name: str, problem: MGHProblem | None) -> MGHProblem:
    if problem is not None:
        return problem
    if name not in PROBLEMS:
        raise ValueError(f"unknown MGH problem {name!r}; allowed: {', '.join(PROBLEMS)} (or pass the problem)")
    return PROBLEMS[name]


def mgh_objective(
    name: str,
    counter: WorkCounter,
    dtype: torch.dtype = torch.float64,
    log: list[tuple[float, float]] | None = None,
    problem: MGHProblem | None = None,
) -> Objective:
    """Problem ``name`` (or ``problem``) as a one-sample :class:`Objective` with x = the parameter
    vector, started at its x₀; ``log`` (optional) receives (f, work units charged so far) of every
    evaluation, in order (the objective charges before it evaluates)."""
    problem = _lookup(name, problem)

    def loss(fmodel, batch) -> Tensor:
        value = problem.f(fmodel(batch.x))
        if log is not None:
            log.append((float(value.detach()), counter.work_units))
        return value

    return Objective(_Point(problem.x0, dtype), loss, counter, n_train=1)


def run_method(
    method: str, hp: dict[str, Any], name: str, max_evals: int = 2000, problem: MGHProblem | None = None
) -> dict[str, Any]:
    """Run a registered single-level method on problem ``name`` (or ``problem``) until it stops or
    has charged ``max_evals`` evaluations; returns the evaluation log and how it ended."""
    from ml2bench.methods import METHODS

    problem = _lookup(name, problem)
    counter, log = WorkCounter(), []
    obj = mgh_objective(name, counter, log=log, problem=problem)
    m = METHODS.get(method)(Hierarchy([obj], [], counter), obj.initial_x(), hp)
    batch = UnitBatch(torch.zeros(1, dtype=torch.float64))
    if m.uses_hvp(m.hp):  # as the runner: measured before, uncharged
        m.hierarchy.measure_hvp_costs(batch)
    result = None
    while counter.grad_evals < max_evals:
        result = m.step(batch)
        if result.stops:
            break
    f_final = float(problem.f(m.x))
    return {
        "log": log,
        "evals": counter.grad_evals,
        "work": counter.work_units,
        "f": f_final,
        "converged": bool(result and result.converged),
        "stop_reason": result.stop_reason if result and result.stops else StopReason.BUDGET_GRAD_EVALS,
        "x": m.x,
    }


def run_scipy(name: str, memory: int = 10, max_evals: int = 2000, problem: MGHProblem | None = None) -> dict[str, Any]:
    """scipy's L-BFGS-B (unconstrained) with memory ``memory``, tolerances at their tightest."""
    from scipy.optimize import minimize

    problem, log = _lookup(name, problem), []

    def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        value = problem.f(xt)
        (g,) = torch.autograd.grad(value, xt)
        log.append((float(value.detach()), float(len(log) + 1)))
        return float(value.detach()), g.numpy()

    r = minimize(
        fg,
        np.array(problem.x0),
        jac=True,
        method="L-BFGS-B",
        options={"maxcor": memory, "ftol": 0.0, "gtol": 0.0, "maxfun": max_evals, "maxiter": max_evals},
    )
    return {
        "log": log,
        "evals": r.nfev,
        "work": float(r.nfev),
        "f": float(r.fun),
        "converged": bool(r.success),
        "stop_reason": r.message,
    }


def first_reaching(log: list[tuple[float, float]], target: float) -> float | None:
    """Work units charged when a point with f ≤ target was first evaluated (None if never);
    for a single-level method without Hessian products, the number of evaluations."""
    return next((cost for v, cost in log if v <= target), None)


METHOD_ROWS = {
    "lbfgs": ("lbfgs", {}),
    "tr-lbfgs": ("tr", {"qn": "lbfgs", "grad_tol": 1e-10}),
    "tr-lsr1": ("tr", {"qn": "lsr1", "grad_tol": 1e-10}),
    "tr-hessian": ("tr", {"model": "hessian", "grad_tol": 1e-10}),
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ml2bench.bench mgh", description=__doc__.splitlines()[0])
    ap.add_argument("--target", type=float, default=1e-10, help="f − f* ≤ target·max(1, |f*|) counts as reaching f*")
    ap.add_argument("--max-evals", type=int, default=2000)
    ap.add_argument(
        "--all",
        action="store_true",
        help="all 35 MGH problems (default: the five badly scaled ones of the README table)",
    )
    ap.add_argument("--scale", type=float, default=1.0, help="--all: start at scale·x₀ (MGH: 1, 10, 100)")
    args = ap.parse_args(argv)
    if args.scale != 1.0 and not args.all:
        ap.error("--scale needs --all")
    problems = full_set(args.scale) if args.all else PROBLEMS
    print(
        f"| problem | method | work to f−f*≤{args.target:g} | total evals | total work | final f | stop reason "
        "| claims converged |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, problem in problems.items():
        rows = {"scipy L-BFGS-B (m=10)": run_scipy(name, max_evals=args.max_evals, problem=problem)}
        for label, (method, hp) in METHOD_ROWS.items():
            rows[label] = run_method(method, hp, name, args.max_evals, problem=problem)
        for label, r in rows.items():
            k = first_reaching(r["log"], problem.fstar + args.target * max(1.0, abs(problem.fstar)))
            print(
                f"| {name} | {label} | {f'{k:.4g}' if k is not None else '—'} | {r['evals']:g} | {r['work']:.4g} "
                f"| {r['f']:.3g} | {r['stop_reason']} | {'yes' if r['converged'] else 'no'} |"
            )


if __name__ == "__main__":
    main()
