"""Two-grid analysis of the grid test problems at their discrete minimiser (small grids, dense).

Why: when a V-cycle is slow, this separates the two suspects. If the rediscretised coarse
Hessian ∇²f_H(R_x u*) gives the same two-grid rate as the Galerkin operator Pᵀ∇²f_h(u*)P, the
coarse problem (scaling, R_g, boundary data) is right and the smoother is to blame; if the
rate falls with a local (Jacobi) smoother but not with a global step (Richardson, what a
gradient or quasi-Newton smoother amounts to), the linearisation has strongly varying local
stiffness. The error propagation of one two-grid cycle with ν1 = ν2 = ``sweeps`` is
S^ν2 (I − P A_H⁻¹ Pᵀ A_h) S^ν1, A_h = ∇²f_h(u*); its spectral radius is returned.

The rates measured on the grid problems are in docs/methods/multilevel.md. Dense: 63² takes
about a minute per rate.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ml2bench.multilevel.grid import GridTransfer
from ml2bench.problems.grid.testproblems import energy_fn, exact_solution

SMOOTHERS = ("richardson", "jacobi")
COARSE = ("galerkin", "rediscretised")


def discrete_minimiser(kind: str, n: int, tol: float = 1e-12, max_iter: int = 30) -> Tensor:
    """Minimiser of the 2-D energy ``kind`` on n² nodes by dense Newton (small n only), started
    from the exact solution where there is one (else from the interior values of the data)."""
    energy = energy_fn(kind, n, 2)
    if kind == "minsurf":  # the data x(1 − x) + y² extended into the interior
        t = torch.arange(1, n + 1, dtype=torch.float64) / (n + 1)
        X, Y = torch.meshgrid(t, t, indexing="ij")
        u = (X * (1 - X) + Y**2).reshape(-1)
    else:
        u = exact_solution(kind, n, 2)
    for _ in range(max_iter):
        g = torch.func.grad(energy)(u)
        if float(g.norm()) <= tol:
            return u
        u = u - torch.linalg.solve(torch.func.hessian(energy)(u), g)
    raise RuntimeError(f"Newton on {kind!r} n={n}: ‖g‖ = {float(g.norm()):.1e} after {max_iter} steps")


def two_grid_rate(
    kind: str, n: int, smoother: str = "richardson", coarse: str = "galerkin", sweeps: int = 2, omega: float = 0.7
) -> float:
    """Spectral radius of the two-grid error propagation at u* (see module docstring).
    ``richardson``: u ← u − (2ω/λ_max) A_h e (one global step); ``jacobi``: u ← u − ω D⁻¹ A_h e."""
    if smoother not in SMOOTHERS or coarse not in COARSE:
        raise ValueError(f"smoother in {SMOOTHERS}, coarse in {COARSE}; got {smoother!r}, {coarse!r}")
    transfer = GridTransfer((n - 1) // 2, 2)
    P = transfer.matrix()
    u = discrete_minimiser(kind, n)
    A = torch.func.hessian(energy_fn(kind, n, 2))(u)
    if coarse == "galerkin":
        A_H = P.T @ A @ P
    else:
        A_H = torch.func.hessian(energy_fn(kind, transfer.n_coarse, 2))(transfer.restrict(u))
    eye = torch.eye(A.shape[0], dtype=A.dtype)
    if smoother == "richardson":
        S = eye - (2 * omega / float(torch.linalg.eigvalsh(A).max())) * A
    else:
        S = eye - omega * A / torch.diag(A)[:, None]
    S_nu = torch.linalg.matrix_power(S, sweeps)
    E = S_nu @ (eye - P @ torch.linalg.solve(A_H, P.T @ A)) @ S_nu
    return float(torch.linalg.eigvals(E).abs().max())
