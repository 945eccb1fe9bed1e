"""First-order coherent coarse models shared by RMTR and MG/OPT.

Given the fine model m_l (the fine loss on level 0, the coarse model of the level above deeper
down) at x_l with gradient g_l, the coarse model on level l+1 is

    h_H(y) = f_H(y) + ⟨R_g g_l − ∇f_H(R_x x_l), y⟩        (+ a constant that is dropped)

so that ∇h_H(R_x x_l) = R_g g_l (first-order coherence). RMTR writes it as
f_H(y) + ⟨R_g g − ∇f_H(R_x x), y − R_x x⟩ and MG/OPT as ψ_H(y) = f_H(y) − vᵀy with
v = ∇f_H(x_H) − R_g g: the same function up to a constant, which no method ever needs
(decreases and ratios use differences only). Evaluations go through the coarse
:class:`~ml2bench.core.objective.Objective`, so they are charged at the coarse level's cost ratio.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ml2bench.core.hierarchy import Transfer
from ml2bench.core.objective import Batch, Objective


class ShiftedObjective:
    """f(y) + ⟨shift, y⟩, evaluated (and charged) through ``base``."""

    def __init__(self, base: Objective, shift: Tensor) -> None:
        self.base = base
        self.shift = shift
        self.level = base.level

    @property
    def n(self) -> int:
        return self.base.n

    def loss(self, x: Tensor, batch: Batch) -> float:
        return self.base.loss(x, batch) + float(self.shift @ x)

    def loss_grad(self, x: Tensor, batch: Batch) -> tuple[float, Tensor]:
        value, grad = self.base.loss_grad(x, batch)
        return value + float(self.shift @ x), grad + self.shift

    def hvp(self, x: Tensor, v: Tensor, batch: Batch) -> Tensor:
        """∇²h(x) v = ∇²f(x) v (the shift is linear)."""
        return self.base.hvp(x, v, batch)


def coherent_model(
    coarse: Objective, transfer: Transfer, x: Tensor, g: Tensor, batch: Batch
) -> tuple[ShiftedObjective, Tensor, float, Tensor]:
    """The coherent coarse model at (x, g): returns (model, y0 = R_x x, model value at y0,
    model gradient at y0 = R_g g). Costs one coarse gradient evaluation."""
    y0 = transfer.restrict(x)
    g_restricted = transfer.restrict_grad(g)
    f0, g0 = coarse.loss_grad(y0, batch)
    shift = g_restricted - g0
    model = ShiftedObjective(coarse, shift)
    return model, y0, f0 + float(shift @ y0), g_restricted


def curvature_scaling(hierarchy, x: Tensor, batch: Batch, seed: int = 0) -> list[dict[str, float]]:
    """Does each coarse level's curvature match its gradient restriction? A diagnostic for a
    user-built hierarchy (it charges two Hessian-vector products per pair of levels).

    For each pair (l, l+1), with a smooth random v on level l+1 (a random vector of the coarsest
    level prolongated up to l+1: the modes a coarse level is for) and a random w on level l, at
    x_l = R_x^l x:
    ``curvature`` κ = vᵀ∇²f_{l+1}(R_x x_l) v / (Pv)ᵀ∇²f_l(x_l)(Pv), how the coarse energy is scaled
    against f_l∘P, and ``restriction`` c = ⟨R_g w, v⟩ / ⟨w, Pv⟩, the scale of R_g = c·Pᵀ. The coherent
    model fixes the coarse gradient, not the curvature: when c ≠ κ its steps are c/κ times too long
    or short (an energy not weighted by h^d with R_g = Pᵀ: κ = 1/4, c = 1 in 2-D; RMTR then needed
    16 / 31 / 60 V-cycles at 31² / 63² / 127² instead of 7, while MG/OPT's line search absorbs the
    factor). ``ratio`` = c/κ should be close to 1."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for l, transfer in enumerate(hierarchy.transfers):
        fine, coarse = hierarchy.objectives[l], hierarchy.objectives[l + 1]
        y = transfer.restrict(x)
        v = torch.randn(hierarchy.objectives[-1].n, generator=gen, dtype=x.dtype).to(x.device)
        for k in range(len(hierarchy.transfers) - 1, l, -1):
            v = hierarchy.transfers[k].prolongate(v)
        w = torch.randn(fine.n, generator=gen, dtype=x.dtype).to(x.device)
        pv = transfer.prolongate(v)
        kappa = float(v @ coarse.hvp(y, v, batch)) / float(pv @ fine.hvp(x, pv, batch))
        c = float(transfer.restrict_grad(w) @ v) / float(w @ pv)
        out.append({"level": float(l), "curvature": kappa, "restriction": c, "ratio": c / kappa})
        x = y
    return out
