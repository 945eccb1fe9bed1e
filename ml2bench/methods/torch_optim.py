"""Shared plumbing for first-order methods on the flat vector.

:class:`TorchOptimMethod` runs a ``torch.optim`` optimiser on one flat parameter (L-BFGS).
:class:`ElementwiseMethod` is for SGD and Adam: their updates are elementwise, so on the flat
vector they are a handful of in-place tensor operations — written out here with exactly the
operations of ``torch.optim``'s single-tensor code (identical iterates, tested), without its
per-step Python machinery (param groups, hooks, profiler records; and its constructor imports
``torch._dynamo``, ~1 s of a short run's start-up). The harness's goal, ≤ 1.05× a plain PyTorch
loop on the smallest MLP/SGD case, is gated by ``tests/benchmarks/test_overhead.py`` (docs/performance.md).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ml2bench.core.hierarchy import Hierarchy
from ml2bench.core.objective import Batch
from ml2bench.methods.base import Method, StepResult


class TorchOptimMethod(Method):
    """Runs a ``torch.optim`` optimiser on one flat parameter; elementwise optimisers (SGD, Adam)
    behave exactly as on the per-tensor parameters, and L-BFGS flattens internally anyway."""

    def __init__(self, hierarchy: Hierarchy, x0: Tensor, hp: dict[str, Any]) -> None:
        super().__init__(hierarchy, x0, hp)
        self.param = nn.Parameter(self.x)
        self.x = self.param.data  # alias: the optimiser updates it in place
        self.optimizer = self.make_optimizer([self.param])

    def make_optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        raise NotImplementedError

    def closure_for(self, batch: Batch):
        objective = self.hierarchy.fine

        def closure() -> Tensor:
            value, grad = objective.loss_grad(self.param.data, batch)
            self.param.grad = grad
            # float64: L-BFGS's line search compares these values; float32 would stall it
            return torch.tensor(value, dtype=torch.float64)

        return closure

    def step(self, batch: Batch) -> StepResult:
        loss = self.optimizer.step(self.closure_for(batch))
        return StepResult(float(loss))


class ElementwiseMethod(Method):
    """One gradient evaluation and an elementwise in-place update of ``self.x`` per step."""

    def step(self, batch: Batch) -> StepResult:
        value, grad = self.hierarchy.fine.loss_grad(self.x, batch)
        with torch.no_grad():
            self.update(grad)
        return StepResult(value)

    def update(self, grad: Tensor) -> None:
        raise NotImplementedError

    def torch_equivalent(self) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
        """The ``torch.optim`` class and arguments this update reproduces (tests, benchmarks)."""
        raise NotImplementedError
