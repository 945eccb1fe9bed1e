"""Matmul/convolution FLOPs of one forward+backward of a loss, read off its autograd graph.

Why not ``torch.utils.flop_counter.FlopCounterMode``: any Python dispatch mode imports
``torch._dynamo`` on first use (~1-1.5 s per process), which used to be a third of a short run's
start-up. The level cost ratios only need the FLOPs of the matrix products and convolutions, and
those follow from shapes that the autograd graph of the loss already holds:

* every ``mm``/``addmm`` node (``nn.Linear``, and the products in the input-derivative graphs a
  PINN loss builds with ``create_graph=True``) costs ``2·m·k·n`` in the forward, and the same
  again for each of its two matrix operands whose gradient the backward w.r.t. the parameters
  needs (operands that do not lead to the parameters — data, a classifier's first-layer input —
  cost nothing);
* every ``nn.Conv1d``/``nn.Conv2d`` call costs ``2·N·C_out·(C_in/groups)·∏ output size·∏ kernel
  size`` in the forward (e.g. ``2·N·H_out·W_out·C_out·(C_in/groups)·k_h·k_w``; shapes from a
  forward hook) and the same per input/weight gradient needed;
* activations, additions, pooling, the loss: 0, as in torch's counter (matmuls and convolutions
  only; the elementwise work is memory-bound and not what the ratios measure).

This is what ``FlopCounterMode`` counts for the same forward+backward (``tests/test_flops.py``
checks equality on every problem family). Graph nodes with products this module has no formula
for (``bmm``, double backward through a convolution) raise instead of being miscounted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

_MM = {
    "MmBackward0": ("_saved_self_sym_sizes", "_saved_mat2_sym_sizes", (0, 1)),
    "AddmmBackward0": ("_saved_mat1_sym_sizes", "_saved_mat2_sym_sizes", (1, 2)),
}
#: convolutions with a FLOP formula (a Conv3d would meet the "outside a module" error)
CONVS = (nn.Conv1d, nn.Conv2d)
_UNSUPPORTED = (
    "BmmBackward0",
    "BaddbmmBackward0",
    "ConvolutionBackwardBackward0",
    "MvBackward0",
    "DotBackward0",
    "AddmvBackward0",
    "MatmulBackward0",
)


def _module_forward_flops(module: nn.Module, out: Tensor) -> int:
    if isinstance(module, nn.Linear):
        return 2 * (out.numel() // module.out_features) * module.in_features * module.out_features
    n, c_out, *size = out.shape
    return 2 * n * c_out * (module.in_channels // module.groups) * math.prod(size) * math.prod(module.kernel_size)


def _nodes(root: Any) -> list[Any]:
    """All autograd nodes reachable from ``root`` (each once)."""
    seen: dict[int, Any] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen[id(node)] = node
        stack.extend(child for child, _ in node.next_functions)
    return list(seen.values())


def graph_leaves(t: Tensor) -> set[int]:
    """Ids of the leaf tensors whose gradients ``t``'s autograd graph accumulates."""
    if t.grad_fn is None:
        return set()
    return {id(n.variable) for n in _nodes(t.grad_fn) if type(n).__name__ == "AccumulateGrad"}


def _reaching(nodes: list[Any], targets: set[int]) -> set[int]:
    """Ids of the nodes from which one of ``targets`` (node ids) is reachable."""
    parents: dict[int, list[Any]] = {}
    for node in nodes:
        for child, _ in node.next_functions:
            if child is not None:
                parents.setdefault(id(child), []).append(node)
    reach = set(targets)
    stack = [n for n in nodes if id(n) in targets]
    while stack:
        for parent in parents.get(id(stack.pop()), ()):
            if id(parent) not in reach:
                reach.add(id(parent))
                stack.append(parent)
    return reach


def graph_flops(
    loss: Tensor, wrt: Tensor, module_flops: dict[int, int] | None = None, extra_roots: list[Tensor] = ()
) -> int:
    """FLOPs of the products that built ``loss`` plus those of ``autograd.grad(loss, wrt)``.

    ``wrt`` must be a leaf that requires grad; ``module_flops`` maps ``id(grad_fn)`` of the outputs
    of Linear/Conv1d/Conv2d calls to their forward FLOPs (from :func:`forward_backward_flops`' hooks,
    which count every call's forward, also one whose output the loss does not use: the forward
    of such a node is not added again here). ``extra_roots``: tensors computed on the way that the
    loss graph may not contain (a PINN's first derivatives when the loss uses only second ones):
    their products were executed, so their forward counts; only the loss's graph is differentiated."""
    if loss.grad_fn is None:
        raise ValueError("loss has no autograd graph: nothing requires grad")
    nodes = _nodes(loss.grad_fn)
    target = {id(n) for n in nodes if type(n).__name__ == "AccumulateGrad" and n.variable is wrt}
    reach = _reaching(nodes, target)
    live = {id(n) for n in nodes}
    for root in extra_roots:
        if root.grad_fn is not None:
            nodes.extend(n for n in _nodes(root.grad_fn) if id(n) not in live and not live.add(id(n)))
    module_flops = module_flops or {}
    total = 0
    for node in nodes:
        name = type(node).__name__
        if name in _UNSUPPORTED:
            raise NotImplementedError(f"ml2bench.core.cost.flops: no FLOP formula for autograd node {name}")
        counted = id(node) in module_flops  # forward already counted by the module hook
        if name in _MM:
            a_attr, b_attr, operands = _MM[name]
            (m, k), (_, n) = getattr(node, a_attr), getattr(node, b_attr)
            fwd = 2 * m * k * n
        elif name == "ConvolutionBackward0":
            if not counted:
                raise NotImplementedError("ml2bench.core.cost.flops: a convolution outside an nn.Conv1d/Conv2d module")
            fwd, operands = module_flops[id(node)], (0, 1)
        else:
            continue
        needed = sum(
            1 for i in operands if node.next_functions[i][0] is not None and id(node.next_functions[i][0]) in reach
        )
        total += fwd * ((0 if counted else 1) + (needed if id(node) in reach else 0))
    return total


def forward_backward_flops(model: nn.Module, loss_of: Callable[[Tensor], Tensor], x: Tensor) -> int:
    """FLOPs of ``loss_of(x)`` and its gradient w.r.t. the flat parameter vector ``x``."""
    calls: dict[int, int] = {}
    forward = 0
    keep: list[Tensor] = []  # keeps the outputs (and so their graph nodes' ids) alive

    def hook(module: nn.Module, args: tuple, out: Tensor) -> None:
        nonlocal forward
        fwd = _module_forward_flops(module, out)
        forward += fwd
        node = out.grad_fn
        if node is not None and type(node).__name__ in ("AddmmBackward0", "MmBackward0", "ConvolutionBackward0"):
            calls[id(node)] = fwd
            keep.append(out)
        elif node is not None and isinstance(module, nn.Linear):  # e.g. (N, L, C) input: view(mm)
            raise NotImplementedError(f"ml2bench.core.cost.flops: Linear on a {out.dim()}-D input")

    roots: list[Tensor] = []
    grad = torch.autograd.grad

    def recording_grad(outputs, inputs, *args, **kwargs):  # input derivatives inside the loss
        results = grad(outputs, inputs, *args, **kwargs)
        roots.extend(t for t in (*_tensors(outputs), *_tensors(results)) if t is not None)
        return results

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, CONVS + (nn.Linear,))]
    torch.autograd.grad = recording_grad
    try:
        xr = x.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = loss_of(xr)
    finally:
        torch.autograd.grad = grad
        for h in handles:
            h.remove()
    return forward + graph_flops(loss, xr, calls, roots)


def _tensors(value: Any) -> tuple:
    return (value,) if isinstance(value, Tensor) else tuple(value)


def loss_flops(model: nn.Module, loss_fn: Callable[[nn.Module, Any], Tensor], batch: Any) -> int:
    """FLOPs of one forward+backward of ``loss_fn(model, batch)`` w.r.t. the model's parameters (the
    numerator of a level's cost ratio; counted at the model's current parameters)."""
    from ml2bench.core.objective import Objective, WorkCounter

    probe = Objective(model, loss_fn, WorkCounter(), n_train=1)

    def loss_of(xr: Tensor) -> Tensor:
        with probe.parameters_as(xr) as m:
            return loss_fn(m, batch)

    return forward_backward_flops(model, loss_of, probe.initial_x())
