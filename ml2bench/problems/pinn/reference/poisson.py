"""2-D Poisson problem  -Δu = 2π² sin(πx) sin(πy)  on [0, 1]², u = 0 on the boundary.

The exact solution u = sin(πx) sin(πy) is known in closed form, so the PINN error
can be measured without any numerical reference.  Both functions accept numpy arrays
or torch tensors (the array module is picked from the input type) so the same code
serves as PINN forcing term and as test-set reference.  Verified in
``tests/test_pde_reference.py``: a 4th-order finite-difference Laplacian of ``exact``
matches ``source`` to 5e-11 relative (h = 1e-3) and u vanishes on ∂Ω to round-off.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = ["DOMAIN", "exact", "source", "boundary"]

#: ((x_min, x_max), (y_min, y_max))
DOMAIN: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 1.0), (0.0, 1.0))


def _xp(a: Any) -> Any:
    """Return ``torch`` for torch tensors, else ``numpy`` (torch is never imported here)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(a, torch.Tensor):
        return torch
    return np


def exact(x: Any, y: Any) -> Any:
    """Exact solution u(x, y) = sin(πx) sin(πy)."""
    xp = _xp(x)
    return xp.sin(np.pi * x) * xp.sin(np.pi * y)


def source(x: Any, y: Any) -> Any:
    """Right-hand side f = -Δu = 2π² sin(πx) sin(πy)."""
    return 2.0 * np.pi**2 * exact(x, y)


def boundary(x: Any, y: Any) -> Any:
    """Dirichlet data g = 0 (the exact solution restricted to ∂Ω)."""
    return 0.0 * x * y
