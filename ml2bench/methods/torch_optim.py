"""Shared plumbing for methods that wrap a ``torch.optim`` optimiser on the flat vector."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..hierarchy import Hierarchy
from ..objective import Batch
from .base import Method, StepResult


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
