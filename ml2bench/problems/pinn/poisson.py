"""``pinn_poisson``: -Δu = 2π² sin(πx) sin(πy) on [0, 1]², u = 0 on ∂Ω (exact u = sin πx sin πy).

The smallest PINN problem: stationary, smooth, with a closed-form solution, so the test error is
measured against the exact u (no numerical reference). See :mod:`ml2bench.problems.pinn.base`.
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
    constraints_param,
    d,
    exact_grid,
    network_params,
    sampling_param,
)
from ml2bench.problems.pinn.reference import poisson


@register
class PinnPoisson(PINNProblem):
    name = "pinn_poisson"
    description = "PINN, 2-D Poisson -Δu = 2π² sin(πx) sin(πy) on [0,1]², u = 0 on the boundary"
    domain = poisson.DOMAIN
    condition_weights = {"boundary": "w_boundary"}
    smoke_params = dict(n_interior=128, n_boundary=32, n_test=21, width=8, depth=4)
    params = spec(
        *network_params(),
        Param("n_interior", int, 1000, "interior collocation points (= n_train)", low=1),
        Param("n_boundary", int, 200, "boundary points, split equally over the 4 sides", low=4),
        Param("w_boundary", float, 1.0, "weight of the boundary term (Raissi et al. 2019: 1)", low=0.0),
        sampling_param(),
        constraints_param(),
        Param("n_test", int, 101, "test grid points per direction (n_test² in all)", low=2),
    )

    def sample_conditions(self, gen: torch.Generator) -> dict[str, PointSet]:
        n = self.hp["n_boundary"]
        counts = [n // 4 + (1 if k < n % 4 else 0) for k in range(4)]
        (x0, x1), (y0, y1) = self.domain
        sides = []
        for k, m in enumerate(counts):  # x = x0, x = x1, y = y0, y = y1
            s = self.unit_samples(gen, m, 1)[:, 0]
            lo, hi = (y0, y1) if k < 2 else (x0, x1)  # the side's free coordinate
            s = lo + (hi - lo) * s
            fixed = torch.full_like(s, ((x0, x1) if k < 2 else (y0, y1))[k % 2])
            sides.append(torch.stack([fixed, s] if k < 2 else [s, fixed], dim=1))
        pts = torch.cat(sides)
        return {"boundary": PointSet(pts, poisson.boundary(pts[:, 0], pts[:, 1]))}

    def lifting(self, p: Tensor) -> tuple[Tensor, Tensor]:
        """g = 0 (the Dirichlet data are zero), ℓ = 16 s(1-s) r(1-r): zero on all four sides."""
        s, r = self.box_coordinates(p)
        return poisson.boundary(p[:, 0], p[:, 1]), 16.0 * s * (1 - s) * r * (1 - r)

    def forcing_at(self, p: Tensor) -> Tensor:
        return poisson.source(p[:, 0], p[:, 1])

    def pde_residual(self, f: FModel, p: Tensor, forcing: Tensor) -> Tensor:
        u = f(p).reshape(-1)
        g = d(u, p)
        u_xx = d(g[:, 0], p)[:, 0]
        u_yy = d(g[:, 1], p)[:, 1]
        return -(u_xx + u_yy) - forcing

    def reference_grid(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return exact_grid(poisson.exact, self.hp["n_test"], self.domain)
