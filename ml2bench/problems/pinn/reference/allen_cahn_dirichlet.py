"""Allen–Cahn reference with Dirichlet data (the SPQN authors' variant):

    u_t - 1e-3 u_xx - 5(u - u³) = 0,  x ∈ [-1, 1], t ∈ [0, 1],  u(x, 0) = x² cos(πx),  u(±1, t) = -1.

The boundary value -1 is the initial data at x = ±1 (compatible data) and a stable zero of the
reaction term. Method: Chebyshev collocation on the N + 1 Chebyshev–Lobatto points (Trefethen,
*Spectral Methods in MATLAB*, ``cheb``) with the boundary values eliminated, integrated in time
by scipy's Radau IIA (order 5, analytic Jacobian) at tight tolerances. Why Chebyshev and not a
Fourier/sine basis: the data are smooth on [-1, 1] but their odd extension is not (u0'' (±1) ≠ 0),
so a sine series would converge only algebraically; Chebyshev needs no compatibility beyond the
boundary values. Values off the nodes come from the barycentric Chebyshev interpolant.

Measured (``tests/test_pde_reference.py``; max |Δu| over x on 257 uniform points):
* self-convergence against N = 1024 at t = 1: N = 256 / 384 / 512 / 768 differ by
  1e-4 / 3e-7 / 3e-9 / 2e-13 (spectral; the error is largest at t = 1, where the interfaces at
  x ≈ ±0.5, of width ~ sqrt(2·1e-3/5) = 0.02, are sharpest); at t ≤ 0.5 every N ≥ 256 agrees to 1e-11;
* Radau tolerance rtol 1e-9 instead of 1e-11 moves N = 512 by 1e-10;
* independent check: second-order finite differences on m uniform intervals (scipy BDF) converge
  to it at order 2 (t = 1: 2.3e-3 / 5.8e-4 / 1.5e-4 for m = 400 / 800 / 1600).
``reference_grid`` therefore solves at N = 512 (accuracy ~3e-9, ~2 s, cached on disk by the problem).
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml2bench.problems.pinn.reference.allen_cahn import initial  # the same u0 = x² cos(πx)

__all__ = ["DIFFUSION", "REACTION", "DOMAIN", "BOUNDARY", "initial", "nodes", "solve", "interpolate", "reference_grid"]

DIFFUSION: float = 1e-3
REACTION: float = 5.0
BOUNDARY: float = -1.0  # u(±1, t) = u0(±1)
#: ((x_min, x_max), (t_min, t_max))
DOMAIN: tuple[tuple[float, float], tuple[float, float]] = ((-1.0, 1.0), (0.0, 1.0))
_N_REF = 512
_RTOL, _ATOL = 1e-11, 1e-13


def nodes(n: int) -> NDArray[np.float64]:
    """Chebyshev–Lobatto points x_j = cos(jπ/n), j = 0..n (from 1 down to -1)."""
    return np.cos(np.pi * np.arange(n + 1) / n)


def _cheb_matrix(n: int) -> NDArray[np.float64]:
    """First-derivative collocation matrix on ``nodes(n)`` (negative-sum trick for the diagonal)."""
    x = nodes(n)
    c = np.ones(n + 1)
    c[0] = c[-1] = 2.0
    c *= (-1.0) ** np.arange(n + 1)
    dx = x[:, None] - x[None, :]
    D = np.outer(c, 1.0 / c) / (dx + np.eye(n + 1))
    return D - np.diag(D.sum(axis=1))


def solve(
    n: int = _N_REF, t_eval: ArrayLike | None = None, rtol: float = _RTOL, atol: float = _ATOL
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Solve on ``nodes(n)``; return ``(x, t_eval, U)`` with ``U[k, j] = u(x_j, t_k)`` (boundary included)."""
    from scipy.integrate import solve_ivp

    t = np.linspace(0.0, 1.0, 101) if t_eval is None else np.asarray(t_eval, np.float64).ravel()
    x = nodes(n)
    D1 = _cheb_matrix(n)
    D2 = D1 @ D1
    A = DIFFUSION * D2[1:-1, 1:-1]
    b = DIFFUSION * BOUNDARY * (D2[1:-1, 0] + D2[1:-1, -1])  # the known boundary values' share of u_xx

    def rhs(_t: float, u: NDArray[np.float64]) -> NDArray[np.float64]:
        return A @ u + b + REACTION * (u - u**3)

    def jac(_t: float, u: NDArray[np.float64]) -> NDArray[np.float64]:
        return A + np.diag(REACTION * (1.0 - 3.0 * u**2))

    sol = solve_ivp(rhs, (0.0, float(t[-1])), initial(x[1:-1]), method="Radau", t_eval=t, jac=jac, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"Allen–Cahn (Dirichlet) reference: {sol.message}")
    U = np.full((len(t), n + 1), BOUNDARY)
    U[:, 1:-1] = sol.y.T
    return x, t, U


def interpolate(U: NDArray[np.float64], x: ArrayLike) -> NDArray[np.float64]:
    """Barycentric Chebyshev interpolant of values ``U[..., j]`` on ``nodes(n)`` at points ``x``."""
    n = U.shape[-1] - 1
    xn = nodes(n)
    w = (-1.0) ** np.arange(n + 1)
    w[0] *= 0.5
    w[-1] *= 0.5
    x = np.asarray(x, np.float64).ravel()
    diff = x[:, None] - xn[None, :]
    exact = diff == 0
    diff[exact] = 1.0
    C = w / diff  # (m, n+1)
    out = (U @ C.T) / C.sum(axis=1)
    rows, cols = np.nonzero(exact)
    out[..., rows] = U[..., cols]  # a point on a node takes the node's value
    return out


@functools.lru_cache(maxsize=8)
def _reference_nodes(nt: int, t_end: float) -> NDArray[np.float64]:
    """The N = 512 solution on its nodes at linspace(0, t_end, nt) (cached: shared by output grids)."""
    U = solve(_N_REF, np.linspace(0.0, t_end, nt))[2]
    U.setflags(write=False)
    return U


@functools.lru_cache(maxsize=8)
def _reference_grid_cached(nx: int, nt: int, t_end: float) -> tuple[NDArray[np.float64], ...]:
    x = np.linspace(-1.0, 1.0, nx)
    t = np.linspace(0.0, t_end, nt)
    U = interpolate(_reference_nodes(nt, t_end), x)
    U[0] = initial(x)
    U[:, [0, -1]] = BOUNDARY
    for a in (x, t, U):
        a.setflags(write=False)
    return x, t, U


def reference_grid(
    nx: int = 256, nt: int = 101, t_end: float = 1.0
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """PINN test set: x = linspace(-1, 1, nx), t = linspace(0, t_end, nt), ``U[k, j] = u(x_j, t_k)``."""
    return _reference_grid_cached(int(nx), int(nt), float(t_end))
