"""``pinn_allen_cahn``: u_t - 1e-4 u_xx + 5u³ - 5u = 0, x ∈ [-1, 1] periodic, t ∈ [0, 1].

Initial data u(x, 0) = x² cos(πx) (Raissi et al. 2019). Periodicity is enforced exactly, not
penalised: the network sees (cos πx, sin πx, t̃) (:class:`~ml2bench.problems.pinn.base.PINNNet` with
``periodic_x``), so u and every x-derivative are 2-periodic and there is no boundary term. The
stiff reaction drives u to the plateaus ±1 with thin interfaces; plain PINNs tend to miss them,
which is why the initial term is weighted by 100 by default (an up-weighted initial condition is
common practice for this problem; ``w_initial=1`` gives the plain loss of Raissi et al. 2019).
Test set: the standard 512 × 201 grid from an ETDRK4/Fourier solve
(:mod:`ml2bench.problems.pinn.reference.allen_cahn`, accurate to ~1e-9; ~1 s once per process, then cached).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from ml2bench.core.objective import FModel
from ml2bench.core.params import ConfigError, Param, spec
from ml2bench.problems.base import register
from ml2bench.problems.pinn.base import PINNProblem, PointSet, d, network_params, sampling_param, tabulated_grid
from ml2bench.problems.pinn.reference import allen_cahn


@register
class PinnAllenCahn(PINNProblem):
    name = "pinn_allen_cahn"
    description = "PINN, Allen–Cahn u_t - 1e-4 u_xx + 5u³ - 5u = 0, periodic in x (ETDRK4 reference)"
    domain = allen_cahn.DOMAIN
    periodic_x = True
    condition_weights = {"initial": "w_initial"}
    smoke_params = dict(n_interior=128, n_initial=32, n_test_x=32, n_test_t=11, width=8, depth=4)
    params = spec(
        *network_params(),
        Param("n_interior", int, 2000, "interior collocation points (= n_train)", low=1),
        Param("n_initial", int, 256, "points on t = 0", low=1),
        Param("w_initial", float, 100.0, "weight of the initial term (common choice: 100)", low=0.0),
        sampling_param(),
        Param("n_test_x", int, 512, "test grid points in x (periodic grid, x = -1 + 2j/n)", low=4),
        Param("n_test_t", int, 201, "test grid points in t", low=2),
    )

    def sample_conditions(self, gen: torch.Generator) -> dict[str, PointSet]:
        init = self.sample_initial(gen, self.hp["n_initial"])
        return {"initial": PointSet(init, torch.from_numpy(allen_cahn.initial(init[:, 0].numpy())))}

    def pde_residual(self, f: FModel, p: Tensor, forcing: Tensor) -> Tensor:
        u = f(p).reshape(-1)
        g = d(u, p)
        u_xx = d(g[:, 0], p)[:, 0]
        return (g[:, 1] - allen_cahn.DIFFUSION * u_xx + allen_cahn.REACTION * (u**3 - u)) - forcing

    def __init__(self, hp: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(hp, **kwargs)
        if self.hp["n_test_x"] % 2:  # fail before training, not at the first evaluation
            raise ConfigError(
                f"problem {self.name!r}: parameter 'n_test_x' must be even (periodic "
                f"Fourier grid), got {self.hp['n_test_x']}"
            )

    def reference_grid(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        return tabulated_grid(allen_cahn.reference_grid, self.hp["n_test_x"], self.hp["n_test_t"])
