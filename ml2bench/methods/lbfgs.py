"""``lbfgs``: ml2bench's own L-BFGS on the flat vector, with a strong-Wolfe line search.

Why not ``torch.optim.LBFGS`` with one iteration per runner step: every ``step()`` of it starts
by evaluating f and ∇f at the point the previous line search already evaluated, so about half of
its charged evaluations repeated a known point (measured: docs/methods/lbfgs.md), and L-BFGS
looked up to 2× more expensive than it is. Here the method keeps f and ∇f of the current
iterate across runner steps (re-evaluated only when the batch changes), so every charged
evaluation is at a new point.

One iteration (Nocedal & Wright, Alg. 7.5): d = −H g by the two-loop recursion
(:meth:`ml2bench.numerics.quasi_newton.LBFGS.solve`, H₀ = (sᵀy / yᵀy) I of the newest pair;
pairs with sᵀy ≤ ε‖s‖‖y‖ are skipped), then torch's strong-Wolfe line search (cubic
interpolation, c₁ = 1e-4, c₂ = 0.9; ``torch.optim.lbfgs._strong_wolfe``, the routine
``torch.optim.LBFGS`` itself uses) from t = ``lr`` (t = ``lr``·min(1, 1/‖g‖₁) on the first
iteration and after a memory reset, when d = −g carries no scale). Every trial point of the line
search is one charged evaluation; a trial that rounds to the current iterate is not evaluated.

Exploding trial values (f non-finite, or above f + 1e8 max(1, |f|): an overflow, or a step far
too long for the curvature): before the strong-Wolfe search, the first trial step is cut by 10
until f is sane (at most ``max_evals_per_step`` trials, each charged; the search then starts from
that point without evaluating it again). torch's search brackets and interpolates with such
values instead, and its cubic interpolation overflows to NaN (on Chebyquad, MGH 35, from 100·x₀
most evaluations were non-finite: docs/methods/lbfgs.md).

Stopping (``StepResult.stop_reason``): ``grad_tol`` (max|g| ≤ ``tolerance_grad``) is the only
convergence criterion. ``nonfinite``: f or ∇f at the iterate is not finite (a start where the
loss overflows), nothing to iterate from. ``tolerance_change`` (|Δf| or max|Δx| below it), ``roundoff`` (the accepted
point equals the iterate in floating point) and ``no_decrease`` (the line search found no lower
value along −g) stop the run without claiming convergence. A line search without decrease along
a quasi-Newton direction first drops the memory and retries along −g.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.optim.lbfgs import _strong_wolfe

from ml2bench.core.hierarchy import Hierarchy
from ml2bench.core.objective import Batch
from ml2bench.core.params import Param, spec
from ml2bench.core.stop import StopReason
from ml2bench.methods.base import Method, SmokeRun, StepResult, register
from ml2bench.numerics.quasi_newton import LBFGS as LBFGSMemory
from ml2bench.numerics.trust_region import exploded


@register
class LBFGS(Method):
    name = "lbfgs"
    description = "L-BFGS (two-loop recursion) with strong-Wolfe line search, full batch; no evaluation charged twice"
    full_batch = True
    state_attrs = ("memory",)
    smoke = (
        SmokeRun("mlp", {"iterations": 20}),
        SmokeRun("resnet", {"iterations": 20}),
        SmokeRun("pinn_poisson", {"iterations": 20}),
        SmokeRun("pinn_burgers", {"iterations": 15}, seeds=(0,)),
        SmokeRun("pinn_allen_cahn", {"iterations": 10}, seeds=(0,)),
    )
    params = spec(
        Param("lr", float, 1.0, "initial step length of the line search", low=0.0, low_inclusive=False),
        Param("history_size", int, 10, "number of stored curvature pairs", low=1),
        Param("iters_per_step", int, 1, "L-BFGS iterations per runner step", low=1),
        Param("max_evals_per_step", int, 25, "cap on line-search evaluations per iteration", low=1),
        Param("tolerance_grad", float, 1e-9, "converged when max|g| falls below", low=0.0),
        Param("tolerance_change", float, 1e-12, "stop (not converged) when |Δf| or max|Δx| falls below", low=0.0),
        Param(
            "line_search",
            str,
            "strong_wolfe",
            "line search ('none': fixed step lr, always taken)",
            choices=("strong_wolfe", "none"),
        ),
    )

    def __init__(self, hierarchy: Hierarchy, x0: Tensor, hp: dict[str, Any]) -> None:
        super().__init__(hierarchy, x0, hp)
        self.memory = LBFGSMemory(hp["history_size"])

    @classmethod
    def levels_required(cls, hp: dict[str, Any]) -> int:
        return 1

    def step(self, batch: Batch) -> StepResult:
        objective = self.hierarchy.fine
        self.fine_fg_at_iterate(batch)
        loss0 = self._f
        reason: StopReason | str = ""
        for _ in range(self.hp["iters_per_step"]):
            reason = self._iterate(objective, batch)
            if reason:
                break
        info = {"grad_norm": float(self._g.norm()), "pairs": float(len(self.memory))}
        if reason == StopReason.GRAD_TOL:
            return StepResult(loss0, True, info, reason)
        return StepResult(loss0, False, info, reason)

    def _iterate(self, objective, batch: Batch) -> StopReason | str:
        """One L-BFGS iteration from (self.x, self._f, self._g); returns a stop reason or ""."""
        hp = self.hp
        x, f, g = self.x, self._f, self._g
        if not self.iterate_is_finite():
            return StopReason.NONFINITE
        if float(g.abs().max()) <= hp["tolerance_grad"]:
            return StopReason.GRAD_TOL
        fresh = len(self.memory) == 0
        d = -g if fresh else -self.memory.solve(g)
        gtd = g @ d
        if not float(gtd) < 0:  # not a descent direction (round-off in H): restart along −g
            self.memory.reset()
            fresh, d = True, -g
            gtd = g @ d
        t0 = hp["lr"] * (min(1.0, 1.0 / float(g.abs().sum())) if fresh else 1.0)

        def trial(t: float) -> Tensor:
            return x + float(t) * d

        known: dict[float, tuple[float, Tensor]] = {}  # trial steps already evaluated

        def evaluate(_x: Tensor, t: float, _d: Tensor) -> tuple[float, Tensor]:
            t = float(t)
            xt = trial(t)
            if torch.equal(xt, x):  # known point: never charge it again
                return f, g
            if t not in known:
                known.clear()  # only the newest trial can be asked for again
                known[t] = objective.loss_grad(xt, batch)
            return known[t]

        if hp["line_search"] != "none":  # back off from an exploding f before the Wolfe search
            for _ in range(hp["max_evals_per_step"] - 1):
                f_t, g_t = evaluate(x, t0, d)
                if not exploded(f, f_t) and bool(torch.isfinite(g_t).all()):
                    break
                t0 *= 0.1

        if hp["line_search"] == "none":
            t = t0
            f_new, g_new = evaluate(x, t, d)
        else:
            f_new, g_new, t, _ = _strong_wolfe(
                evaluate, x, t0, d, f, g, gtd, tolerance_change=hp["tolerance_change"], max_ls=hp["max_evals_per_step"]
            )
            t = float(t)
        x_new = trial(t)
        if hp["line_search"] != "none" and not f_new < f:  # also a NaN f_new
            if not fresh:  # the quasi-Newton direction failed: forget the pairs, retry along −g
                self.memory.reset()
                return ""
            return StopReason.NO_DECREASE
        if torch.equal(x_new, x):
            return StopReason.ROUNDOFF
        s = float(t) * d  # the pair as torch.optim.LBFGS forms it (not (x + s) − x, which loses
        self.memory.update(s, g_new - g)  # the small components in float32)
        self.x, self._f, self._g = x_new, f_new, g_new
        if abs(f_new - f) < hp["tolerance_change"] or float(s.abs().max()) <= hp["tolerance_change"]:
            return StopReason.TOLERANCE_CHANGE
        return ""
