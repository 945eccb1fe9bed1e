"""Grid transfers for the classical test problems: vectors of interior nodal values on the unit
interval (1-D) or unit square (2-D, row-major, index ``i * n + j`` for node (x_i, y_j)).

Per dimension the fine grid has ``n_fine = 2 n_coarse + 1`` interior nodes; coarse node ``j``
coincides with fine node ``2j + 1`` (0-based).

- ``prolongate`` (P): linear (1-D) / bilinear (2-D, the tensor product) interpolation, zero
  Dirichlet values outside.
- ``restrict`` (R_x, iterates): injection, so R_x P = I exactly.
- ``restrict_grad`` (R_g, gradients): R_g must be scaled like the coarse energy against f_h∘P.
  ``"variational"`` (default) is Pᵀ, right for the h^d-weighted energies of
  :mod:`ml2bench.problems.grid.testproblems` (1-D weighted by h, 2-D by h²), whose coarse energies
  approximate f_h(P y). ``"full_weighting"`` is Pᵀ / 2^d, the classical full-weighting residual
  restriction: right for energies *not* weighted by h^d (e.g. the 5-point energy divided by h²,
  whose coarse energy approximates f_h(P y) / 2^d); on the h^d-weighted ones it leaves the coarse
  curvature off by 2^d (the METHODS.md "two restrictions" pitfall; MG/OPT stalls, tested).
  :func:`ml2bench.multilevel.coarse.curvature_scaling` measures which one a hierarchy needs.

All maps are matrix-free; :meth:`GridTransfer.matrix` returns the dense P for tests.
"""

from __future__ import annotations

import torch
from torch import Tensor

GRAD_RESTRICTIONS = ("variational", "full_weighting")


def _prolong_axis(u: Tensor, axis: int) -> Tensor:
    """Linear interpolation along ``axis`` from n to 2n+1 interior nodes (zero boundary)."""
    u = u.movedim(axis, -1)
    n = u.shape[-1]
    pad = torch.nn.functional.pad(u, (1, 1))  # boundary zeros
    out = u.new_zeros(*u.shape[:-1], 2 * n + 1)
    out[..., 1::2] = u
    out[..., 0::2] = 0.5 * (pad[..., :-1] + pad[..., 1:])
    return out.movedim(-1, axis)


def _prolong_axis_T(v: Tensor, axis: int) -> Tensor:
    """Transpose of :func:`_prolong_axis` (2n+1 → n)."""
    v = v.movedim(axis, -1)
    out = v[..., 1::2] + 0.5 * (v[..., 0:-1:2] + v[..., 2::2])
    return out.movedim(-1, axis)


class GridTransfer:
    """P, R_x, R_g between a fine grid of ``2 n_coarse + 1`` and a coarse grid of ``n_coarse``
    interior nodes per dimension (see module docstring)."""

    def __init__(self, n_coarse: int, dim: int = 1, grad_restriction: str = "variational") -> None:
        if dim not in (1, 2):
            raise ValueError(f"dim must be 1 or 2, got {dim}")
        if n_coarse < 1:
            raise ValueError(f"n_coarse must be >= 1, got {n_coarse}")
        if grad_restriction not in GRAD_RESTRICTIONS:
            raise ValueError(f"unknown grad_restriction {grad_restriction!r}; allowed: {', '.join(GRAD_RESTRICTIONS)}")
        self.dim = dim
        self.n_coarse = n_coarse
        self.n_fine = 2 * n_coarse + 1
        self.grad_restriction = grad_restriction
        self.grad_scale = 1.0 if grad_restriction == "variational" else 0.5**dim

    def _shape(self, n: int) -> tuple[int, ...]:
        return (n,) * self.dim

    def prolongate(self, x_coarse: Tensor) -> Tensor:
        u = x_coarse.reshape(self._shape(self.n_coarse))
        for axis in range(self.dim):
            u = _prolong_axis(u, axis)
        return u.reshape(-1)

    def prolongate_T(self, v_fine: Tensor) -> Tensor:
        """Pᵀ (exact transpose of :meth:`prolongate`)."""
        v = v_fine.reshape(self._shape(self.n_fine))
        for axis in range(self.dim):
            v = _prolong_axis_T(v, axis)
        return v.reshape(-1)

    def restrict(self, x_fine: Tensor) -> Tensor:
        u = x_fine.reshape(self._shape(self.n_fine))
        if self.dim == 1:
            return u[1::2].clone()
        return u[1::2, 1::2].reshape(-1).clone()

    def restrict_grad(self, g_fine: Tensor) -> Tensor:
        out = self.prolongate_T(g_fine)
        return out if self.grad_scale == 1.0 else out * self.grad_scale

    def matrix(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """Dense P (n_fine^d × n_coarse^d)."""
        nc = self.n_coarse**self.dim
        eye = torch.eye(nc, dtype=dtype)
        return torch.stack([self.prolongate(eye[k]) for k in range(nc)], dim=1)


def grid_sizes(n_fine: int, levels: int) -> list[int]:
    """Interior nodes per dimension on each level: n_{l+1} = (n_l − 1) / 2."""
    sizes = [n_fine]
    for _ in range(levels - 1):
        n = sizes[-1]
        if n % 2 == 0 or n < 3:
            raise ValueError(f"grid of {n} interior nodes cannot be coarsened (need n = 2m + 1, m >= 1)")
        sizes.append((n - 1) // 2)
    return sizes


def max_grid_levels(n_fine: int) -> int:
    """Levels available from ``n_fine`` interior nodes down to one node."""
    levels, n = 1, n_fine
    while n % 2 == 1 and n >= 3:
        n = (n - 1) // 2
        levels += 1
    return levels
