"""Local (subdomain) solvers: a few iterations of L-BFGS, SGD or Adam on one local problem.

A local problem is a function ``fun(y) -> (f, g)`` of the subdomain's variables ``y`` only; every
call is one full forward/backward through :meth:`Objective.loss_grad` and is charged there (see
:mod:`ml2bench.methods.schwarz` for what a local evaluation costs). The solvers start from ``y0``
with fresh state on every call (the local problem changes from one outer iteration to the next).

``radius`` (APTS): the local correction ``y - y0`` is clipped to this norm at the end (the local
trust region, bounded by the global radius); the local value at the clipped point is then
evaluated once more when the caller needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

LocalFun = Callable[[Tensor], "tuple[float, Tensor]"]

DEFAULT_LR = {"lbfgs": 1.0, "sgd": 0.01, "adam": 1e-3}


@dataclass
class LocalResult:
    y: Tensor  # local variables after the solve
    f_start: float  # local objective at y0
    f_end: float  # local objective at y (nan when not evaluated and not needed)
    evals: int  # local evaluations made


class _Recorder:
    """Wraps ``fun``: counts calls, remembers f(y0) and the last few (point, f, g) triples.

    A call at the point of the previous call is answered from memory, not evaluated (and charged)
    again: torch's strong-Wolfe search asks for it when a trial step rounds away, e.g. on a
    one-variable subdomain near its minimum."""

    def __init__(self, fun: LocalFun) -> None:
        self.fun = fun
        self.evals = 0
        self.f_start: float | None = None
        self.recent: list[tuple[Tensor, float, Tensor]] = []

    def __call__(self, y: Tensor) -> tuple[float, Tensor]:
        if self.recent and torch.equal(self.recent[-1][0], y):
            return self.recent[-1][1], self.recent[-1][2].clone()
        f, g = self.fun(y)
        self.evals += 1
        if self.f_start is None:
            self.f_start = f
        self.recent = (self.recent + [(y.detach().clone(), f, g.detach().clone())])[-4:]
        return f, g

    def value_at(self, y: Tensor, need: bool) -> float:
        for point, f, _ in reversed(self.recent):
            if torch.equal(point, y):
                return f
        if not need:
            return float("nan")
        return self(y)[0]


def solve(
    fun: LocalFun,
    y0: Tensor,
    *,
    solver: str,
    steps: int,
    lr: float | None = None,
    history_size: int = 10,
    tolerance_grad: float = 1e-9,
    tolerance_change: float = 1e-12,
    radius: float | None = None,
    need_f_end: bool = False,
) -> LocalResult:
    """Run ``steps`` iterations of ``solver`` on ``fun`` from ``y0``."""
    lr = DEFAULT_LR[solver] if lr is None else lr
    rec = _Recorder(fun)
    param = nn.Parameter(y0.detach().clone())

    def closure() -> Tensor:
        f, g = rec(param.data)
        param.grad = g
        return torch.tensor(f, dtype=torch.float64)  # float32 would blur the line search

    if solver == "lbfgs":
        opt = torch.optim.LBFGS(
            [param],
            lr=lr,
            max_iter=steps,
            max_eval=max(steps * 5 // 4, steps + 1),
            tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change,
            history_size=history_size,
            line_search_fn="strong_wolfe",
        )
        opt.step(closure)
    elif solver in ("sgd", "adam"):
        opt = torch.optim.SGD([param], lr=lr) if solver == "sgd" else torch.optim.Adam([param], lr=lr)
        for _ in range(steps):
            opt.step(closure)
    else:
        raise ValueError(f"unknown local solver {solver!r}")
    y = param.data.detach().clone()
    if radius is not None:
        c = y - y0
        norm = float(torch.linalg.vector_norm(c))
        if norm > radius:
            y = y0 + c * (radius / norm)
    f_start = rec.f_start if rec.f_start is not None else fun(y0)[0]
    f_end = rec.value_at(y, need_f_end)
    return LocalResult(y, float(f_start), float(f_end), rec.evals)
