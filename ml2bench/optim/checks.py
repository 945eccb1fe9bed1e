"""What ``ml2bench.optim`` refuses, before the first evaluation, with the module and the fix named.

Each check guards an assumption of the methods: f is a deterministic function of one flat
parameter vector on one device in one floating type (trust-region ratios and line searches compare
f at different points), and a depth hierarchy coarsens residual stacks branch by branch
(:mod:`ml2bench.multilevel.depth`).
"""

from __future__ import annotations

import operator
import sys

import torch
from torch import nn

from ml2bench.core.params import UnsupportedModelError
from ml2bench.nn.stack import ResidualStack, residual_stacks

LOW_PRECISION = (torch.float16, torch.bfloat16)


def _where(model: nn.Module, name: str) -> str:
    return f"{type(model).__name__}.{name}" if name else type(model).__name__


def check_model(model: nn.Module, owner: str, allow_low_precision: bool = False) -> None:
    """The checks every method needs (see module docstring)."""
    if isinstance(model, nn.parallel.DistributedDataParallel) or _is_fsdp(model):
        raise UnsupportedModelError(
            f"{owner}: {type(model).__name__} wraps the model for data parallelism (DDP/FSDP), which averages or "
            f"shards gradients behind the optimizer's back; pass the plain module — SPQN/APTS run one replica per "
            f"rank themselves (process_group=)"
        )
    named = list(model.named_parameters())
    if not named:
        raise UnsupportedModelError(f"{owner}: {type(model).__name__} has no parameters to train")
    frozen = [n for n, p in named if not p.requires_grad]
    if frozen:
        raise UnsupportedModelError(
            f"{owner}: {_where(model, frozen[0])} has requires_grad=False; the methods optimise every parameter "
            f"of the model: pass a module without frozen parameters (or unfreeze them)"
        )
    devices = sorted({str(p.device) for _, p in named})
    dtypes = sorted({str(p.dtype) for _, p in named})
    if len(devices) > 1 or len(dtypes) > 1:
        raise UnsupportedModelError(
            f"{owner}: {type(model).__name__} has parameters on {', '.join(devices)} in {', '.join(dtypes)}; "
            f"the methods work on one flat vector: move the model to one device and dtype (model.to(...))"
        )
    dtype = named[0][1].dtype
    if not dtype.is_floating_point:
        raise UnsupportedModelError(f"{owner}: parameters of dtype {dtype} cannot be trained; allowed: float types")
    if dtype in LOW_PRECISION and not allow_low_precision:
        raise UnsupportedModelError(
            f"{owner}: {type(model).__name__} is in {dtype}: trust-region ratios and line searches compare f at "
            f"nearby points, which {dtype}'s 3-4 significant digits cannot resolve; use float32/float64, or "
            f"pass allow_low_precision=True"
        )
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.training and m.p > 0:
            raise UnsupportedModelError(
                f"{owner}: {_where(model, name)} is dropout in training mode, so f is random and the methods' "
                f"acceptance tests compare noise; call model.eval() (or set p=0) before training with it"
            )


def _is_fsdp(model: nn.Module) -> bool:
    """Wrapped by FSDP (or ``fully_shard``)? A wrapped model means ``torch.distributed.fsdp`` was
    imported; it is not imported here (2.5 s)."""
    fsdp = sys.modules.get("torch.distributed.fsdp")
    if fsdp is None:
        return False
    kinds = tuple(getattr(fsdp, name) for name in ("FullyShardedDataParallel", "FSDPModule") if hasattr(fsdp, name))
    return isinstance(model, kinds)


def check_depth_hierarchy(model: nn.Module, levels: int, owner: str) -> None:
    """A model whose residual stacks can be coarsened branch by branch: stacks exist, none nested,
    no branch with a skip connection of its own, no parameter of a branch tied to another one.
    (:func:`~ml2bench.multilevel.depth.coarsen` checks the depths and
    :class:`~ml2bench.multilevel.depth.DepthTransfer` the branch shapes, also before any evaluation.)"""
    stacks = residual_stacks(model)
    if not stacks:
        raise UnsupportedModelError(
            f"{owner}: levels={levels} needs coarse levels, but {type(model).__name__} has no "
            f"ml2bench.nn.ResidualStack and no coarse_models= were given; mark its residual part with "
            f"ResidualStack(branches, T=...), give coarse_models= and transfers=, or a Hierarchy"
        )
    stack_of: dict[int, str] = {}
    for name, stack in stacks:
        for inner, m in stack.named_modules():
            if m is not stack and isinstance(m, ResidualStack):
                raise UnsupportedModelError(
                    f"{owner}: {_where(model, name + '.' + inner)} is a ResidualStack inside another one; "
                    f"allowed: stacks side by side (a nested stack cannot be coarsened branch by branch)"
                )
        for k, branch in enumerate(stack.branches):
            if _has_skip_connection(branch):
                raise UnsupportedModelError(
                    f"{owner}: branch {k} of {_where(model, name)} ({type(branch).__name__}) adds its own input to "
                    f"its output (a skip connection), but the stack already computes x + h f(x); give the branch "
                    f"f without the skip"
                )
        prefix = f"{name}.branches." if name else "branches."
        for pname, p in model.named_parameters(remove_duplicate=False):
            if pname.startswith(prefix):
                stack_of.setdefault(id(p), pname)
    names: dict[int, list[str]] = {}
    for pname, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(pname)
    for pid, first in stack_of.items():
        if len(names[pid]) > 1:
            raise UnsupportedModelError(
                f"{owner}: {_where(model, first)} is tied to {', '.join(n for n in names[pid] if n != first)}; "
                f"a coarsened stack keeps every other branch, which would cut the tie: untie the weights or "
                f"give coarse_models= and transfers= of your own"
            )


def _has_skip_connection(branch: nn.Module) -> bool:
    """The branch's traced graph adds its input to something (``out += x``, as torchvision's
    BasicBlock). A branch that cannot be traced symbolically is not judged."""
    try:
        from torch import fx

        graph = fx.symbolic_trace(branch).graph
    except Exception:  # noqa: BLE001 (data-dependent control flow etc.: nothing to judge)
        return False
    inputs = {node for node in graph.nodes if node.op == "placeholder"}
    adds = (operator.add, operator.iadd, torch.add)
    for node in graph.nodes:
        is_add = (node.op == "call_function" and node.target in adds) or (
            node.op == "call_method" and node.target in ("add", "add_")
        )
        if is_add and any(arg in inputs for arg in node.args):
            return True
    return False
