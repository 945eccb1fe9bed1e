"""Klein–Gordon problem  u_tt - u_xx + u³ = f  on (x, t) ∈ [0, 1]², manufactured solution.

Exact solution u = x cos(5πt) + (x t)³ (a standard PINN benchmark; the oscillation in t
makes it hard for plain PINNs).  Derivatives by hand:

    u_t  = -5π x sin(5πt) + 3 x³ t²        u_tt = -25π² x cos(5πt) + 6 x³ t
    u_x  = cos(5πt) + 3 x² t³              u_xx = 6 x t³

so  f = -25π² x cos(5πt) + 6 x³ t - 6 x t³ + u³.
Initial data: u(x, 0) = x, u_t(x, 0) = 0; boundary data: u(0, t) = 0,
u(1, t) = cos(5πt) + t³.  ``tests/test_pde_reference.py`` checks ``forcing`` against
sympy (symbolically identical; numerically 2e-16 relative) and against 4th-order
finite differences of ``exact`` (7e-10 relative at h = 1e-3).  numpy arrays or torch tensors in.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ml2bench.problems.pinn.reference.poisson import _xp

__all__ = [
    "DOMAIN",
    "exact",
    "exact_t",
    "forcing",
    "initial_u",
    "initial_ut",
    "boundary_left",
    "boundary_right",
]

#: ((x_min, x_max), (t_min, t_max))
DOMAIN: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 1.0), (0.0, 1.0))

_W = 5.0 * np.pi  # angular frequency in time


def exact(x: Any, t: Any) -> Any:
    """u(x, t) = x cos(5πt) + (x t)³."""
    xp = _xp(x)
    return x * xp.cos(_W * t) + (x * t) ** 3


def exact_t(x: Any, t: Any) -> Any:
    """u_t(x, t) = -5π x sin(5πt) + 3 x³ t²."""
    xp = _xp(x)
    return -_W * x * xp.sin(_W * t) + 3.0 * x**3 * t**2


def forcing(x: Any, t: Any) -> Any:
    """f = u_tt - u_xx + u³ for the manufactured solution."""
    xp = _xp(x)
    u = exact(x, t)
    return -(_W**2) * x * xp.cos(_W * t) + 6.0 * x**3 * t - 6.0 * x * t**3 + u**3


def initial_u(x: Any) -> Any:
    """u(x, 0) = x."""
    return exact(x, 0.0 * x)


def initial_ut(x: Any) -> Any:
    """u_t(x, 0) = 0."""
    return exact_t(x, 0.0 * x)


def boundary_left(t: Any) -> Any:
    """u(0, t) = 0."""
    return exact(0.0 * t, t)


def boundary_right(t: Any) -> Any:
    """u(1, t) = cos(5πt) + t³."""
    return exact(0.0 * t + 1.0, t)
