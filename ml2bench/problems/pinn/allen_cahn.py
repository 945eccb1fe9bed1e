"""Allen–Cahn PINNs, u_t - D u_xx + 5u³ - 5u = 0 on x ∈ [-1, 1], t ∈ [0, 1], u(x, 0) = x² cos(πx):

- ``pinn_allen_cahn`` (Raissi et al. 2019): D = 1e-4, periodic in x. Periodicity is enforced
  exactly, not penalised: the network sees (cos πx, sin πx, t̃) (:class:`~ml2bench.problems.pinn.base.PINNNet`
  with ``periodic_x``), so u and every x-derivative are 2-periodic and there is no boundary term.
  The stiff reaction drives u to the plateaus ±1 with thin interfaces; plain PINNs tend to miss
  them, which is why the initial term is weighted by 100 by default (an up-weighted initial
  condition is common practice for this problem; ``w_initial=1`` gives the plain loss of Raissi et
  al. 2019). Test set: the standard 512 × 201 grid from an ETDRK4/Fourier solve
  (:mod:`ml2bench.problems.pinn.reference.allen_cahn`, accurate to ~1e-9; ~1 s once, then cached).
  Hard constraints: g = u0, ℓ = τ. u0 is not C¹-periodic (u0'(±1) = ∓2), so the lifted u is
  periodic in value but its x-derivative jumps by 4 at x = ±1; the true solution smooths that kink
  within ~sqrt(D t) ≤ 0.01 of x = ±1, which the lifted class cannot represent there (an L2 share
  of order 1e-3 of the solution's norm).
- ``pinn_allen_cahn_dirichlet`` (the SPQN authors' variant, cruzas/ML_APTS ``AllenCahn.py``):
  D = 1e-3 and Dirichlet data u(±1, t) = -1 (= u0(±1)). Test set: a 256 × 101 grid from a
  Chebyshev/Radau solve (:mod:`ml2bench.problems.pinn.reference.allen_cahn_dirichlet`, ~3e-9).
  Hard constraints as the authors': g = u0, ℓ = 4 s(1-s) τ.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from ml2bench.core.objective import FModel
from ml2bench.core.params import ConfigError, Param, spec
from ml2bench.problems.base import register
from ml2bench.problems.pinn.base import (
    PINNProblem,
    PointSet,
    constraints_param,
    d,
    initial_boundary_params,
    network_params,
    sampling_param,
    tabulated_grid,
)
from ml2bench.problems.pinn.reference import allen_cahn, allen_cahn_dirichlet


class _AllenCahn(PINNProblem):
    """The PDE and the initial data shared by both variants."""

    diffusion: ClassVar[float]

    def sample_conditions(self, gen: torch.Generator) -> dict[str, PointSet]:
        init = self.sample_initial(gen, self.hp["n_initial"])
        return {"initial": PointSet(init, torch.from_numpy(allen_cahn.initial(init[:, 0].numpy())))}

    def pde_residual(self, f: FModel, p: Tensor, forcing: Tensor) -> Tensor:
        u = f(p).reshape(-1)
        g = d(u, p)
        u_xx = d(g[:, 0], p)[:, 0]
        return (g[:, 1] - self.diffusion * u_xx + allen_cahn.REACTION * (u**3 - u)) - forcing


@register
class PinnAllenCahn(_AllenCahn):
    name = "pinn_allen_cahn"
    description = "PINN, Allen–Cahn u_t - 1e-4 u_xx + 5u³ - 5u = 0, periodic in x (ETDRK4 reference)"
    domain = allen_cahn.DOMAIN
    diffusion = allen_cahn.DIFFUSION
    periodic_x = True
    condition_weights = {"initial": "w_initial"}
    smoke_params = dict(n_interior=128, n_initial=32, n_test_x=32, n_test_t=11, width=8, depth=4)
    params = spec(
        *network_params(),
        Param("n_interior", int, 2000, "interior collocation points (= n_train)", low=1),
        Param("n_initial", int, 256, "points on t = 0", low=1),
        Param("w_initial", float, 100.0, "weight of the initial term (common choice: 100)", low=0.0),
        sampling_param(),
        constraints_param(),
        Param("n_test_x", int, 512, "test grid points in x (periodic grid, x = -1 + 2j/n)", low=4),
        Param("n_test_t", int, 201, "test grid points in t", low=2),
    )

    def __init__(self, hp: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(hp, **kwargs)
        if self.hp["n_test_x"] % 2:  # fail before training, not at the first evaluation
            raise ConfigError(
                f"problem {self.name!r}: parameter 'n_test_x' must be even (periodic "
                f"Fourier grid), got {self.hp['n_test_x']}"
            )

    def lifting(self, p: Tensor) -> tuple[Tensor, Tensor]:
        """g = u0(x), ℓ = τ: the initial data exactly; periodic in value (u0(-1) = u0(1))."""
        return allen_cahn.initial(p[:, 0]), self.box_coordinates(p)[1]

    def reference_grid(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return tabulated_grid(allen_cahn.reference_grid, self.hp["n_test_x"], self.hp["n_test_t"])


@register
class PinnAllenCahnDirichlet(_AllenCahn):
    name = "pinn_allen_cahn_dirichlet"
    description = "PINN, Allen–Cahn u_t - 1e-3 u_xx + 5u³ - 5u = 0, u(±1, t) = -1 (SPQN variant; Chebyshev reference)"
    domain = allen_cahn_dirichlet.DOMAIN
    diffusion = allen_cahn_dirichlet.DIFFUSION
    condition_weights = {"initial": "w_initial", "boundary": "w_boundary"}
    smoke_params = dict(n_interior=128, n_initial=32, n_boundary=32, n_test_x=32, n_test_t=11, width=8, depth=4)
    params = spec(
        *network_params(),
        *initial_boundary_params("the authors'"),
        Param("n_test_x", int, 256, "test grid points in x (x = linspace(-1, 1, n))", low=2),
        Param("n_test_t", int, 101, "test grid points in t", low=2),
    )

    def sample_conditions(self, gen: torch.Generator) -> dict[str, PointSet]:
        conditions = super().sample_conditions(gen)
        bnd = self.sample_sides(gen, self.hp["n_boundary"])
        conditions["boundary"] = PointSet(bnd, torch.full((len(bnd),), allen_cahn_dirichlet.BOUNDARY, dtype=bnd.dtype))
        return conditions

    def lifting(self, p: Tensor) -> tuple[Tensor, Tensor]:
        """g = u0(x) (u0(±1) = -1, the boundary data), ℓ = 4 s(1-s) τ: the authors' ``apply_bc``."""
        s, tau = self.box_coordinates(p)
        return allen_cahn.initial(p[:, 0]), 4.0 * s * (1 - s) * tau

    def reference_grid(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return tabulated_grid(allen_cahn_dirichlet.reference_grid, self.hp["n_test_x"], self.hp["n_test_t"])
