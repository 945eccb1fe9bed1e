"""``pinn_klein_gordon``: u_tt - u_xx + u³ = f on (x, t) ∈ [0, 1]², manufactured solution.

Exact u = x cos(5πt) + (x t)³ (Wang, Teng & Perdikaris 2021); f, the initial data u = x,
u_t = 0 at t = 0 and the Dirichlet data at x = 0, 1 come from the exact solution
(:mod:`ml2bench.problems.pinn.reference.klein_gordon`). The second-order-in-time PDE needs two initial terms; the
u_t term is a derivative condition, evaluated by autograd like the residual.
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
    input_points,
    network_params,
    sampling_param,
)
from ml2bench.problems.pinn.reference import klein_gordon


@register
class PinnKleinGordon(PINNProblem):
    name = "pinn_klein_gordon"
    description = "PINN, Klein–Gordon u_tt - u_xx + u³ = f on [0,1]², exact u = x cos(5πt) + (xt)³"
    domain = klein_gordon.DOMAIN
    condition_weights = {"initial": "w_initial", "initial_t": "w_initial", "boundary": "w_boundary"}
    smoke_params = dict(n_interior=128, n_boundary=32, n_initial=32, n_test=21, width=8, depth=4)
    params = spec(
        *network_params(),
        Param("n_interior", int, 2000, "interior collocation points (= n_train)", low=1),
        Param("n_initial", int, 200, "points on t = 0 (used for u and for u_t)", low=1),
        Param("n_boundary", int, 200, "points on x = 0 and x = 1 (half on each side)", low=2),
        Param("w_initial", float, 1.0, "weight of both initial terms (Wang et al. 2021: 1)", low=0.0),
        Param("w_boundary", float, 1.0, "weight of the boundary term (Wang et al. 2021: 1)", low=0.0),
        sampling_param(),
        constraints_param(),
        Param("n_test", int, 101, "test grid points per direction (n_test² in all)", low=2),
    )

    def sample_conditions(self, gen: torch.Generator) -> dict[str, PointSet]:
        init = self.sample_initial(gen, self.hp["n_initial"])
        nb = self.hp["n_boundary"]
        bnd = self.sample_sides(gen, nb)
        return {
            "initial": PointSet(init, klein_gordon.exact(init[:, 0], init[:, 1])),  # u, u_t at t = t0
            "initial_t": PointSet(init, klein_gordon.exact_t(init[:, 0], init[:, 1])),
            "boundary": PointSet(bnd, klein_gordon.exact(bnd[:, 0], bnd[:, 1])),
        }

    def lifting(self, p: Tensor) -> tuple[Tensor, Tensor]:
        """Transfinite interpolation of the data: with L(t), R(t) the boundary values at x = x0, x1 and
        u0, v0 the initial value and velocity at t = t0,

            g = (1-s) L(t) + s R(t) + [u0(x) - (1-s) u0(x0) - s u0(x1)] + (t-t0) [v0(x) - (1-s) L'(t0) - s R'(t0)]

        matches all four data when they are compatible at the corners (u0(x0) = L(t0), v0(x0) = L'(t0),
        likewise at x1: true for traces of one solution, as here); ℓ = 4 s(1-s) τ² vanishes on x = x0, x1
        and to second order at t = t0, so u_t(x, t0) = g_t(x, t0) = v0(x) as well.
        """
        (x0, x1), (t0, _) = self.domain
        x, t = p[:, 0], p[:, 1]
        s, tau = self.box_coordinates(p)
        X0, X1, T0 = (torch.full_like(x, v) for v in (x0, x1, t0))
        u, u_t = klein_gordon.exact, klein_gordon.exact_t  # the data are traces of the manufactured solution
        g = (
            (1 - s) * u(X0, t)
            + s * u(X1, t)
            + u(x, T0)
            - (1 - s) * u(X0, T0)
            - s * u(X1, T0)
            + (t - t0) * (u_t(x, T0) - (1 - s) * u_t(X0, T0) - s * u_t(X1, T0))
        )
        return g, 4.0 * s * (1 - s) * tau**2

    def forcing_at(self, p: Tensor) -> Tensor:
        return klein_gordon.forcing(p[:, 0], p[:, 1])

    def condition_residual(self, f: FModel, name: str, points: PointSet) -> Tensor:
        if name != "initial_t":
            return super().condition_residual(f, name, points)
        q = input_points(points.x)
        return d(f(q).reshape(-1), q)[:, 1] - points.target

    def pde_residual(self, f: FModel, p: Tensor, forcing: Tensor) -> Tensor:
        u = f(p).reshape(-1)
        g = d(u, p)
        u_xx = d(g[:, 0], p)[:, 0]
        u_tt = d(g[:, 1], p)[:, 1]
        return u_tt - u_xx + u**3 - forcing

    def reference_grid(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return exact_grid(klein_gordon.exact, self.hp["n_test"], self.domain)
