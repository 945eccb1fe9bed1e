"""Operation counts of autograd computations, for charging work that is not one gradient.

Why not ``torch.utils.flop_counter.FlopCounterMode`` alone: it counts matrix products and
convolutions only, so on elementwise energies (grid problems, the Moré–Garbow–Hillstrom test
functions) it measures nothing. :class:`OpCounter` uses torch's FLOP formula where one exists
and otherwise one operation per output element (views count zero), which ranks a double
backward against a single one on any loss.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry


class OpCounter(TorchDispatchMode):
    """Counts operations of every aten call made inside the ``with`` block (see module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0.0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        if packet in flop_registry:
            self.total += float(flop_registry[packet](*args, **kwargs, out_val=out))
        elif not func.is_view:
            self.total += float(sum(t.numel() for t in tree_flatten(out)[0] if isinstance(t, Tensor)))
        return out


def hvp_cost_ratio(objective: Any, x: Tensor, v: Tensor, batch: Any) -> float:
    """Operations of one Hessian-vector product by double backward (as
    :meth:`ml2bench.core.objective.Objective.hvp` computes it) over those of one loss+gradient, at
    ``x`` on ``batch``; uncharged (about 2 on networks: a forward, a backward with graph and a
    second backward). Raises if the gradient measures no work."""
    with torch.enable_grad():
        with OpCounter() as grad_ops:
            xr = x.detach().requires_grad_(True)
            torch.autograd.grad(objective.loss_fn(objective.fmodel(xr), batch), xr)
        with OpCounter() as hvp_ops:
            xr = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(objective.loss_fn(objective.fmodel(xr), batch), xr, create_graph=True)
            if g.requires_grad:
                torch.autograd.grad(g, xr, grad_outputs=v.detach().to(g), allow_unused=True)
    if grad_ops.total <= 0:
        raise RuntimeError("hvp_cost_ratio: the gradient measured no operations")
    return hvp_ops.total / grad_ops.total
