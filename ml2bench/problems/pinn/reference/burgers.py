"""Viscous Burgers reference  u_t + u u_x = ν u_xx,  x ∈ [-1, 1], t ∈ [0, 1].

Data: u(x, 0) = -sin(πx), u(±1, t) = 0, ν = 0.01/π (the Raissi et al. PINN setting).
The reference is the exact Cole–Hopf solution

    u(x, t) = -∫ sin(π(x-η)) f(x-η) e^{-η²/(4νt)} dη / ∫ f(x-η) e^{-η²/(4νt)} dη,
    f(y) = exp(-cos(πy) / (2πν)),

evaluated by Gauss–Hermite quadrature after η = sqrt(4νt)·z.  f spans e^{±50}, so the
log-integrand is shifted by its maximum per point before exponentiating (no overflow,
also for smaller ν).  u_x is the exact derivative of the quadrature formula.

Measured (``tests/test_pde_reference.py``):
* max |u_x| at x = 0, t = 1.6037/π is 152.0051615760 vs 152.00516 (Basdevant et al.
  1986): relative error 1e-8 for n_quad >= 60 (n_quad = 40: 2e-6, 20: 3e-2);
* on a 513×200 grid, n_quad = 60/80/100 differ from n_quad = 300 by 1e-9/1e-13/3e-15
  (max |Δu|), so the default n_quad = 100 is converged to round-off for ν = 0.01/π
  (smaller ν needs more nodes: the shock width scales like ν);
* u(±1, t) = 0 to 1e-16;
* PDE residual from 4th-order finite differences (h = 1e-4): 2e-11 for t ≤ 0.25,
  6e-7 near/after shock formation (where |u u_x| ~ 100, i.e. FD-limited).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ml2bench.problems.pinn.reference.poisson import _xp

__all__ = ["NU", "DOMAIN", "initial", "reference", "reference_ux", "reference_grid"]

NU: float = 0.01 / np.pi
#: ((x_min, x_max), (t_min, t_max))
DOMAIN: tuple[tuple[float, float], tuple[float, float]] = ((-1.0, 1.0), (0.0, 1.0))
_MAX_NQUAD = 360  # numpy's hermgauss weights underflow to nan beyond ~370 nodes


@functools.lru_cache(maxsize=16)
def _hermgauss(n_quad: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Gauss–Hermite nodes and log-weights (log avoids underflow of tiny weights)."""
    if not 1 <= n_quad <= _MAX_NQUAD:
        raise ValueError(f"n_quad must be in [1, {_MAX_NQUAD}], got {n_quad}")
    z, w = np.polynomial.hermite.hermgauss(n_quad)
    return z, np.log(w)


def initial(x: Any) -> Any:
    """u(x, 0) = -sin(πx) (numpy in, float64 out; a torch tensor in, a tensor of its dtype out)."""
    xp = _xp(x)
    if xp is np:
        x = np.asarray(x, dtype=np.float64)
    return -xp.sin(np.pi * x)


def _cole_hopf(
    x: ArrayLike, t: ArrayLike, nu: float, n_quad: int, derivative: bool
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
    """Return u (and u_x if ``derivative``) at broadcast (x, t)."""
    x, t = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(t, np.float64))
    if np.any(t < 0):
        raise ValueError("t must be >= 0")
    z, logw = _hermgauss(n_quad)
    c = np.sqrt(4.0 * nu * t)[..., None]
    y = x[..., None] - c * z  # f is evaluated at y = x - η
    py = np.pi * y
    s = np.sin(py)
    logf = logw - np.cos(py) / (2.0 * np.pi * nu)
    g = np.exp(logf - logf.max(axis=-1, keepdims=True))  # stabilised weights·f
    den = g.sum(-1)
    num = (g * s).sum(-1)
    u = -num / den
    ux = None
    if derivative:
        # d/dx f(y) = f(y) sin(πy) / (2ν);  d/dx sin(πy) = π cos(πy)
        dden = (g * s).sum(-1) / (2.0 * nu)
        dnum = (g * (np.pi * np.cos(py) + s * s / (2.0 * nu))).sum(-1)
        ux = -(dnum * den - num * dden) / den**2
    t0 = t == 0  # c = 0: quadrature degenerates
    if np.any(t0):
        u = np.where(t0, -np.sin(np.pi * x), u)
        if ux is not None:
            ux = np.where(t0, -np.pi * np.cos(np.pi * x), ux)
    return u, ux


def reference(x: ArrayLike, t: ArrayLike, nu: float = NU, n_quad: int = 100) -> NDArray[np.float64]:
    """Cole–Hopf solution u(x, t) at broadcast points (accurate to ~1e-15 for ν = 0.01/π)."""
    return _cole_hopf(x, t, nu, n_quad, derivative=False)[0]


def reference_ux(x: ArrayLike, t: ArrayLike, nu: float = NU, n_quad: int = 100) -> NDArray[np.float64]:
    """Exact x-derivative of the quadrature formula for u (relative accuracy ~1e-14)."""
    ux = _cole_hopf(x, t, nu, n_quad, derivative=True)[1]
    assert ux is not None
    return ux


def reference_grid(
    nx: int = 256, nt: int = 100, t_end: float = 1.0, nu: float = NU, n_quad: int = 100
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """PINN test set on a tensor grid: x = linspace(-1, 1, nx), t = linspace(0, t_end, nt).

    Returns ``(x, t, U)`` with ``U[k, j] = u(x[j], t[k])`` (shape (nt, nx)); 256×100 in ~0.1 s.
    """
    x = np.linspace(-1.0, 1.0, nx)
    t = np.linspace(0.0, t_end, nt)
    U = reference(x[None, :], t[:, None], nu=nu, n_quad=n_quad)
    return x, t, U
