"""A hierarchy of objectives (level 0 finest) with transfer operators between them.

Multilevel methods restrict two different things (MG/OPT: Nash, Optim. Methods Softw. 2000; RMTR:
Gratton, Sartenaer & Toint, SIAM J. Optim. 2008): iterates with ``restrict`` (R_x, with R_x P = I)
and gradients with ``restrict_grad`` (R_g = Pᵀ when the coarse objective approximates f_h(P y)
variationally, the Galerkin relation of Briggs, Henson & McCormick, "A Multigrid Tutorial"). Using
one for the other (e.g. full weighting Pᵀ/4 for gradients of h²-weighted energies) keeps the
coarse model first-order coherent but scales its curvature wrongly, and cycles can stall. A problem supplies one
:class:`Transfer` per pair of neighbouring levels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from torch import Tensor

from ml2bench.core.objective import Objective, WorkCounter


class Transfer(Protocol):
    """Linear maps between the flat parameter vectors of level l (fine) and l+1 (coarse)."""

    def prolongate(self, x_coarse: Tensor) -> Tensor:
        """P: coarse → fine (corrections and iterates)."""

    def restrict(self, x_fine: Tensor) -> Tensor:
        """R_x: fine → coarse for iterates; R_x P = I."""

    def restrict_grad(self, g_fine: Tensor) -> Tensor:
        """R_g: fine → coarse for gradients (Pᵀ for variational coarse models)."""


@dataclass
class Hierarchy:
    """Objectives per level and ``transfers[l]`` between level l and level l+1."""

    objectives: list[Objective]
    transfers: list[Transfer]
    counter: WorkCounter

    def __post_init__(self) -> None:
        if len(self.transfers) != len(self.objectives) - 1:
            raise ValueError("a hierarchy of L levels needs L-1 transfers")

    @property
    def levels(self) -> int:
        return len(self.objectives)

    @property
    def fine(self) -> Objective:
        return self.objectives[0]

    def measure_hvp_costs(self, batch) -> None:
        """Measure every level's Hessian-vector-product cost on ``batch`` (uncharged; before
        training, for a method that uses products: :meth:`Objective.measure_hvp_cost`)."""
        for objective in self.objectives:
            objective.measure_hvp_cost(batch)
