"""The loss of one model on one level as a function of a flat parameter vector.

Every method in ml2bench, single- or multilevel, optimises a flat vector ``x`` (a 1-D tensor).
:class:`Objective` evaluates the problem's loss at ``x`` on a batch by swapping views of ``x``
into the module for one call (as ``torch.func.functional_call`` does), so the optimiser owns a
plain vector, autograd flows to it, and several levels can be evaluated side by side. Each evaluation is charged to a shared :class:`WorkCounter`, which is
the single place where gradient evaluations and fine-level-equivalent work are counted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import torch
from torch import Tensor, nn


class Batch(Protocol):
    """What a problem hands to its loss: anything with the number of samples it holds."""

    size: int


FModel = Callable[[Tensor], Tensor]
LossFn = Callable[[FModel, Any], Tensor]


@dataclass
class WorkCounter:
    """Counts evaluations in units of one full-batch fine-level gradient evaluation.

    ``grad_evals`` adds ``batch_size / n_train`` per evaluation on any level (function-only
    evaluations are charged like gradient evaluations: conservative, and what line searches
    report). ``work_units`` weights each evaluation by its level's measured cost ratio
    (FLOPs of forward+backward relative to the finest level), so a coarse step is not free.
    """

    grad_evals: float = 0.0
    work_units: float = 0.0
    by_level: dict[int, float] = field(default_factory=dict)

    def charge(self, level: int, batch_fraction: float, cost_ratio: float) -> None:
        self.grad_evals += batch_fraction
        self.work_units += batch_fraction * cost_ratio
        self.by_level[level] = self.by_level.get(level, 0.0) + batch_fraction


class Objective:
    """f_l(x) = problem loss of ``model`` with parameters ``x`` on a batch; counted."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        counter: WorkCounter,
        n_train: int,
        level: int = 0,
        cost_ratio: float = 1.0,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.counter = counter
        self.n_train = n_train
        self.level = level
        self.cost_ratio = cost_ratio
        named = [(n, p) for n, p in model.named_parameters()]
        self.names = [n for n, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.numels = [p.numel() for _, p in named]
        # where each parameter lives, resolved once: swapping views into these slots is what
        # torch.func.functional_call does, without re-walking the module tree on every call
        # (measured: that walk was a third of an SGD step's overhead on small networks)
        self._slots = [self._slot(model, n) for n in self.names]

    @property
    def n(self) -> int:
        """Number of parameters (length of the flat vector)."""
        return sum(self.numels)

    def initial_x(self) -> Tensor:
        """The module's current parameters as one flat, detached vector."""
        return torch.cat([p.detach().reshape(-1) for p in self.model.parameters()]).clone()

    def unflatten(self, x: Tensor) -> dict[str, Tensor]:
        return {n: t.view(s) for n, t, s in zip(self.names, torch.split(x, self.numels), self.shapes)}

    @staticmethod
    def _slot(model: nn.Module, name: str) -> tuple[nn.Module, str]:
        owner, _, attr = name.rpartition(".")
        return (model.get_submodule(owner) if owner else model), attr

    def fmodel(self, x: Tensor) -> FModel:
        """The network as a function of its input, with parameters ``x`` (views of it).

        Like ``torch.func.functional_call``: the module's parameters are replaced by the views for
        the duration of one forward call and restored afterwards, so autograd flows to ``x``.
        Not for concurrent use of one objective from several threads.
        """
        views = [t.view(s) for t, s in zip(torch.split(x, self.numels), self.shapes)]
        slots = self._slots

        def f(inp: Tensor) -> Tensor:
            saved = [module._parameters[attr] for module, attr in slots]
            try:
                for (module, attr), view in zip(slots, views):
                    module._parameters[attr] = view
                return self.model(inp)
            finally:
                for (module, attr), param in zip(slots, saved):
                    module._parameters[attr] = param

        return f

    def _charge(self, batch: Batch) -> None:
        self.counter.charge(self.level, batch.size / self.n_train, self.cost_ratio)

    def loss(self, x: Tensor, batch: Batch) -> float:
        """f(x) on ``batch`` (charged as one evaluation)."""
        self._charge(batch)
        with torch.enable_grad():  # PINN losses differentiate w.r.t. inputs
            value = self.loss_fn(self.fmodel(x.detach()), batch)
        return float(value.detach())

    def loss_grad(self, x: Tensor, batch: Batch) -> tuple[float, Tensor]:
        """f(x) and ∇f(x) on ``batch`` (charged as one evaluation)."""
        self._charge(batch)
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            value = self.loss_fn(self.fmodel(xr), batch)
            (grad,) = torch.autograd.grad(value, xr)
        return float(value.detach()), grad.detach()

    def hvp(self, x: Tensor, v: Tensor, batch: Batch) -> Tensor:
        """∇²f(x) v on ``batch`` by double backward (the gradient is built with ``create_graph``
        and differentiated once more along ``v``; forward-over-reverse would be the same).

        Charged as one evaluation weighted by its measured cost relative to :meth:`loss_grad`
        (:func:`ml2bench.opcount.hvp_cost_ratio`, measured at the first call and kept; about 2 on
        networks): ``grad_evals`` counts it once, ``work_units`` at that ratio.
        Every call rebuilds the graph at ``x`` (no caching between calls)."""
        if getattr(self, "_hvp_ratio", None) is None:
            from .opcount import hvp_cost_ratio
            self._hvp_ratio = hvp_cost_ratio(self, x, v, batch)
        self.counter.charge(self.level, batch.size / self.n_train, self.cost_ratio * self._hvp_ratio)
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            value = self.loss_fn(self.fmodel(xr), batch)
            (grad,) = torch.autograd.grad(value, xr, create_graph=True)
            if not grad.requires_grad:  # the gradient does not depend on x: the loss is linear
                return torch.zeros_like(x)
            (hv,) = torch.autograd.grad(grad, xr, grad_outputs=v.detach().to(grad), allow_unused=True)
        return torch.zeros_like(x) if hv is None else hv.detach()


def is_finite(value: float) -> bool:
    return math.isfinite(value)
