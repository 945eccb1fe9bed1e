"""``pinn_burgers``: u_t + u u_x = (0.01/π) u_xx on [-1, 1] × [0, 1] (Raissi et al. 2019).

Data u(x, 0) = -sin(πx), u(±1, t) = 0. A shock-like front forms at x = 0 around t ≈ 0.5, which
is what makes the problem hard for PINNs. The test set is the standard 256 × 100 grid with the
exact Cole–Hopf solution (:mod:`ml2bench.problems.pinn.reference.burgers`, round-off accurate).
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from ml2bench.core.objective import FModel
from ml2bench.core.params import Param, spec
from ml2bench.problems.base import register
from ml2bench.problems.pinn.base import (
    PINNProblem,
    PointSet,
    d,
    initial_boundary_params,
    network_params,
    tabulated_grid,
)
from ml2bench.problems.pinn.reference import burgers


@register
class PinnBurgers(PINNProblem):
    name = "pinn_burgers"
    description = "PINN, viscous Burgers u_t + u u_x = (0.01/π) u_xx, u(x,0) = -sin(πx) (Cole–Hopf reference)"
    domain = burgers.DOMAIN
    condition_weights = {"initial": "w_initial", "boundary": "w_boundary"}
    smoke_params = dict(n_interior=128, n_boundary=32, n_initial=32, n_test_x=32, n_test_t=11, width=8, depth=4)
    params = spec(
        *network_params(),
        *initial_boundary_params("Raissi et al. 2019"),
        Param("n_test_x", int, 256, "test grid points in x", low=2),
        Param("n_test_t", int, 100, "test grid points in t", low=2),
    )

    def sample_conditions(self, gen: torch.Generator) -> dict[str, PointSet]:
        init = self.sample_initial(gen, self.hp["n_initial"])
        nb = self.hp["n_boundary"]
        bnd = self.sample_sides(gen, nb)
        return {
            "initial": PointSet(init, torch.from_numpy(burgers.initial(init[:, 0].numpy()))),
            "boundary": PointSet(bnd, torch.zeros(nb, dtype=torch.float64)),
        }

    def lifting(self, p: Tensor) -> tuple[Tensor, Tensor]:
        """g = u0(x) = -sin(πx), which is 0 = the boundary data at x = ±1; ℓ = 4 s(1-s) τ (the SPQN
        authors' ``apply_bc``: (x+1)(1-x) t on this domain)."""
        s, tau = self.box_coordinates(p)
        return burgers.initial(p[:, 0]), 4.0 * s * (1 - s) * tau

    def pde_residual(self, f: FModel, p: Tensor, forcing: Tensor) -> Tensor:
        u = f(p).reshape(-1)
        g = d(u, p)
        u_x, u_t = g[:, 0], g[:, 1]
        u_xx = d(u_x, p)[:, 0]
        return u_t + u * u_x - burgers.NU * u_xx - forcing

    def reference_grid(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return tabulated_grid(burgers.reference_grid, self.hp["n_test_x"], self.hp["n_test_t"])
