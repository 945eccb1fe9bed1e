"""Transfer operators between ODE-form residual networks of depth L (fine) and L/2 (coarse).

The residual part of a network is marked by :class:`~ml2bench.nn.stack.ResidualStack` (the harness's
ODE-ResNets are built with one, and so can any user's network); the coarse network has every other
branch of each stack and the same T (:func:`coarsen`). Branch parameters are interpolated in "time"
(depth) with a matrix M ∈ R^{L×L/2} per stack; parameters outside the stacks (opening and closing
layers) are shared and copied.

- ``prolongate`` (P): fine block i = Σ_k M[i, k] · coarse block k.
- ``restrict_grad`` (R_g = Pᵀ): the coarse block with step 2h stands for two fine blocks with step
  h, so the coarse loss approximates f_h(P y) and its gradient is Pᵀ ∇f_h (variational scaling).
- ``restrict`` (R_x = (MᵀM)⁻¹Mᵀ on blocks): the left inverse of P, so R_x P = I exactly. For
  piecewise-constant M it is the average of the two fine blocks, i.e. R_x = ½ Pᵀ on blocks.

``kind="constant"``: fine blocks 2k and 2k+1 copy coarse block k. ``kind="linear"``: linear
interpolation between block midpoints t_i = (i + ½) h, constant beyond the first/last coarse
midpoint.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ml2bench.core.params import UnsupportedModelError
from ml2bench.nn.stack import residual_stacks

KINDS = ("constant", "linear")


def interpolation_matrix(fine_depth: int, kind: str) -> Tensor:
    """M (fine_depth × fine_depth/2) in float64."""
    if fine_depth % 2:
        raise ValueError(f"depth {fine_depth} cannot be halved")
    if kind not in KINDS:
        raise ValueError(f"unknown interpolation {kind!r}; allowed: {', '.join(KINDS)}")
    coarse_depth = fine_depth // 2
    M = torch.zeros(fine_depth, coarse_depth, dtype=torch.float64)
    for i in range(fine_depth):
        if kind == "constant":
            M[i, i // 2] = 1.0
            continue
        s = i / 2 - 0.25  # fine midpoint in coarse-index units
        if s <= 0:
            M[i, 0] = 1.0
        elif s >= coarse_depth - 1:
            M[i, coarse_depth - 1] = 1.0
        else:
            k = int(s)
            w = s - k
            M[i, k], M[i, k + 1] = 1 - w, w
    return M


def coarsen(model: nn.Module, times: int = 1) -> nn.Module:
    """A copy of ``model`` with every :class:`~ml2bench.nn.stack.ResidualStack` coarsened ``times``
    times: branches 0, 2, 4, … kept, T kept, so the step h doubles each time (the coarse level of
    :class:`DepthTransfer`). The copy's parameter values are the kept branches' (a multilevel method
    evaluates a coarse level only at restricted iterates R_x x, so they are never read there)."""
    stacks = residual_stacks(model)
    if not stacks:
        raise UnsupportedModelError(_NO_STACK.format(name=type(model).__name__))
    for name, stack in stacks:
        if stack.depth % 2**times:
            where = f"{type(model).__name__}.{name}" if name else type(model).__name__
            raise UnsupportedModelError(
                f"{where}: a ResidualStack of depth {stack.depth} cannot be halved {times} times "
                f"(levels={times + 1} needs a depth divisible by {2**times}); allowed: fewer levels or another depth"
            )
    coarse = copy.deepcopy(model)
    for _, stack in residual_stacks(coarse):
        stack.branches = nn.ModuleList(list(stack.branches)[:: 2**times])
    return coarse


_NO_STACK = (
    "{name} has no ml2bench.nn.ResidualStack, so there is no depth to coarsen: build its residual part as "
    "ResidualStack(branches, T=...) (x <- x + h f_k(x)), or give coarse models and a Transfer of your own"
)


@dataclass
class _StackLayout:
    """Flat indices of one stack's branch parameters, a (depth, branch numel) array."""

    name: str
    index: Tensor
    shapes: list[tuple[str, tuple[int, ...]]]  # (name within the branch, shape) of branch 0


def _layout(model: nn.Module) -> tuple[Tensor, list[_StackLayout], int]:
    """Flat indices of the shared parameters, the layout of each residual stack, and the length of
    the flat vector (the order of ``model.named_parameters()``, as :class:`~ml2bench.core.objective.
    Objective`). Raises :class:`UnsupportedModelError` for a model without stacks and for a stack
    whose branches differ in their parameter shapes."""
    stacks = residual_stacks(model)
    if not stacks:
        raise UnsupportedModelError(_NO_STACK.format(name=type(model).__name__))
    prefixes = [f"{name}.branches." if name else "branches." for name, _ in stacks]
    offset = 0
    shared: list[Tensor] = []
    branches: list[dict[int, list[tuple[str, Tensor, tuple[int, ...]]]]] = [{} for _ in stacks]
    for pname, p in model.named_parameters():
        idx = torch.arange(offset, offset + p.numel())
        offset += p.numel()
        for i, prefix in enumerate(prefixes):
            if pname.startswith(prefix):
                k, _, rest = pname[len(prefix) :].partition(".")
                branches[i].setdefault(int(k), []).append((rest, idx, tuple(p.shape)))
                break
        else:
            shared.append(idx)
    layouts = []
    for (name, stack), found in zip(stacks, branches):
        where = f"{type(model).__name__}.{name}" if name else type(model).__name__
        shapes = [[(rest, shape) for rest, _, shape in found.get(k, [])] for k in range(stack.depth)]
        for k in range(stack.depth):
            if shapes[k] != shapes[0] or not shapes[k]:
                raise UnsupportedModelError(
                    f"{where}: branch {k} of the ResidualStack has parameters {shapes[k]}, branch 0 has "
                    f"{shapes[0]}; allowed: branches with parameters of the same names and shapes (depth "
                    f"interpolation maps branch to branch)"
                )
        index = torch.stack([torch.cat([idx for _, idx, _ in found[k]]) for k in range(stack.depth)])
        layouts.append(_StackLayout(name, index, shapes[0]))
    return (torch.cat(shared) if shared else torch.empty(0, dtype=torch.long)), layouts, offset


class DepthTransfer:
    """P, R_x and R_g between two networks whose residual stacks have depths L and L/2 (see module
    docstring); the coarse network is the fine one with every other branch (:func:`coarsen`)."""

    def __init__(self, fine: nn.Module, coarse: nn.Module, kind: str = "constant") -> None:
        self.shared_f, stacks_f, self.n_fine = _layout(fine)
        self.shared_c, stacks_c, self.n_coarse = _layout(coarse)
        if (
            [s.name for s in stacks_f] != [s.name for s in stacks_c]
            or any(f.index.shape[0] != 2 * c.index.shape[0] for f, c in zip(stacks_f, stacks_c))
            or self.shared_f.numel() != self.shared_c.numel()
        ):
            raise ValueError("coarse network must have half the blocks of the fine one and the same shared layers")
        if any(f.shapes != c.shapes for f, c in zip(stacks_f, stacks_c)):
            raise ValueError("fine and coarse blocks must have the same size")
        self.kind = kind
        #: per stack: fine and coarse branch indices, M, its left inverse R = (MᵀM)⁻¹Mᵀ, and Mᵀ
        self.stacks = []
        for f, c in zip(stacks_f, stacks_c):
            M = interpolation_matrix(f.index.shape[0], kind)
            self.stacks.append((f.index, c.index, M, torch.linalg.solve(M.T @ M, M.T), M.T.contiguous()))
        self._cache: dict[tuple, Tensor] = {}

    @property
    def M(self) -> Tensor:
        """The interpolation matrix of the (first) residual stack."""
        return self.stacks[0][2]

    @property
    def R(self) -> Tensor:
        return self.stacks[0][3]

    def _on(self, t: Tensor, like: Tensor) -> Tensor:
        """``t`` on ``like``'s device (and dtype for floats), cached: no host copies per call."""
        dtype = like.dtype if t.is_floating_point() else t.dtype
        key = (id(t), like.device, dtype)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = t.to(device=like.device, dtype=dtype)
        return cached

    def _apply(
        self, x: Tensor, n_out: int, shared_in: Tensor, shared_out: Tensor, fine_to_coarse: bool, op: int
    ) -> Tensor:
        out = x.new_empty(n_out)
        out[self._on(shared_out, x)] = x[self._on(shared_in, x)]
        for stack in self.stacks:
            blocks_in, blocks_out = (stack[0], stack[1]) if fine_to_coarse else (stack[1], stack[0])
            out[self._on(blocks_out, x)] = self._on(stack[op], x) @ x[self._on(blocks_in, x)]
        return out

    def prolongate(self, x_coarse: Tensor) -> Tensor:
        return self._apply(x_coarse, self.n_fine, self.shared_c, self.shared_f, False, 2)

    def restrict(self, x_fine: Tensor) -> Tensor:
        return self._apply(x_fine, self.n_coarse, self.shared_f, self.shared_c, True, 3)

    def restrict_grad(self, g_fine: Tensor) -> Tensor:
        return self._apply(g_fine, self.n_coarse, self.shared_f, self.shared_c, True, 4)
