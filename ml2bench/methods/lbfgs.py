"""L-BFGS with a strong-Wolfe line search (torch.optim.LBFGS), full or large batch.

One runner step is ``iters_per_step`` L-BFGS iterations; every function/gradient evaluation of
the line search is charged by the objective, so an "iteration" that needs 20 evaluations costs 20.
"""
from __future__ import annotations

import torch

from ..objective import Batch
from ..params import Param, spec
from . import register
from .base import StepResult
from .torch_optim import TorchOptimMethod


@register
class LBFGS(TorchOptimMethod):
    name = "lbfgs"
    description = "L-BFGS with strong-Wolfe line search (torch.optim.LBFGS), full batch"
    full_batch = True
    params = spec(
        Param("lr", float, 1.0, "initial step length of the line search", low=0.0, low_inclusive=False),
        Param("history_size", int, 10, "number of stored curvature pairs", low=1),
        Param("iters_per_step", int, 1, "L-BFGS iterations per runner step", low=1),
        Param("max_evals_per_step", int, 25, "cap on evaluations per runner step", low=1),
        Param("tolerance_grad", float, 1e-9, "stop when max|g| falls below", low=0.0),
        Param("tolerance_change", float, 1e-12, "stop when steps or loss changes fall below", low=0.0),
        Param("line_search", str, "strong_wolfe", "line search", choices=("strong_wolfe", "none")),
    )

    def make_optimizer(self, params):
        hp = self.hp
        return torch.optim.LBFGS(
            params, lr=hp["lr"], max_iter=hp["iters_per_step"], max_eval=hp["max_evals_per_step"],
            tolerance_grad=hp["tolerance_grad"], tolerance_change=hp["tolerance_change"],
            history_size=hp["history_size"],
            line_search_fn=None if hp["line_search"] == "none" else "strong_wolfe")

    def step(self, batch: Batch) -> StepResult:
        before = self.x.clone()
        loss = float(self.optimizer.step(self.closure_for(batch)))
        # torch's L-BFGS returns without moving at a stationary point; report it, or the runner
        # would keep paying for evaluations that change nothing.
        return StepResult(loss, converged=bool(torch.equal(before, self.x)))
