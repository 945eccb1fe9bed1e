"""Classical multilevel test problems with known answers, as :class:`~ml2bench.core.hierarchy.Hierarchy`
objects of flat-vector :class:`~ml2bench.core.objective.Objective`\\ s: model problems of Briggs, Henson &
McCormick, "A Multigrid Tutorial" (2nd ed., SIAM 2000) and the minimal-surface problems of Gratton, Sartenaer &
Toint, "Recursive trust-region methods for multiscale nonlinear optimization" (SIAM J. Optim. 2008).

The unknown is the vector of interior nodal values ``u`` (the "parameters" of a module whose
forward returns them), the loss is a discrete energy, the batch is a single dummy sample
(``size = 1 = n_train``), so one loss/gradient evaluation on level l is charged
``cost_ratio = n_l / n_0`` work units (unknowns per level relative to the finest).

Energies (h = 1/(n+1), u = 0 on the boundary):

- ``poisson`` 1-D: E_h(u) = 1/(2h) Σ_{i=0}^{n} (u_{i+1} − u_i)² − h Σ f_i u_i, f = π² sin(πx),
  exact u = sin(πx). Hessian A_h = (1/h) tridiag(−1, 2, −1) and Pᵀ A_h P = A_H exactly.
- ``poisson`` 2-D: E_h(u) = ½ Σ_edges (u_a − u_b)² − h² Σ f u (the h²-weighted energy of the
  5-point Laplacian; Hessian = the stencil [−1; −1 4 −1; −1]), f = 2π² sin(πx) sin(πy),
  exact u = sin(πx) sin(πy).
- ``fas`` (2-D, Briggs–Henson–McCormick ch. 6): −Δu + γ u eᵘ = f, γ = 10, exact
  u = (x² − x³) sin(3πy); energy E_h(u) = ½ Σ_edges (u_a − u_b)² + h² Σ [γ (u − 1) eᵘ − f u],
  whose gradient is h² × (5-point residual). Discretisation error O(h²).
- ``cubic`` (2-D): −Δu + u³ = f, exact u = sin(πx) sin(πy) (manufactured: f = 2π² u + u³);
  energy E_h(u) = ½ Σ_edges (u_a − u_b)² + h² Σ [u⁴/4 − f u] (strictly convex), gradient
  h² × (5-point residual); discretisation error O(h²).
- ``varcoef`` (2-D): −div(a ∇u) + u = f, a(x, y) = 1 + 0.9 sin(3πx) cos(2πy) ∈ [0.1, 1.9] (a smooth
  coefficient with contrast 19), exact u = sin(πx) sin(πy) (manufactured f); energy
  ½ Σ_edges a(edge midpoint) (u_a − u_b)² + h² Σ [u²/2 − f u], linear and isotropic but with a
  stiffness that varies in space; discretisation error O(h²). Coarse levels are rediscretised (a
  sampled at their own edge midpoints).
- ``minsurf`` (2-D): E_h(u) = h² Σ_cells √(1 + |∇_h u|²) with forward differences and
  Dirichlet data g(x, y) = x(1 − x) + y² (non-zero on y = 1); no closed-form solution.
  From u₀ = 0 the first iterates jump by 1 across the cells next to y = 1 (slopes 1/h), and the
  linearised operator is anisotropic where |∇u| is large (ratio 1 + |∇u|² of its principal
  coefficients), a hard case for point smoothers.
- ``scherk`` (2-D): the minimal surface with steep data, E_h(u) = (h²/2) Σ_cells Σ_{2 triangles}
  √(1 + |∇u|²) (P1 finite elements, both triangles of each cell, so the discretisation is
  symmetric and O(h²)), Dirichlet data and exact solution Scherk's surface
  u = ln(cos(a(y − ½)) / cos(a(x − ½))) / a, a = 2.8: slopes up to tan 1.4 = 5.8 per component
  at the corners, W = 1 + |∇u|² up to 68 (60 sampled on 127²). Measured max error 3.7e-3 /
  1.1e-3 / 5.4e-4 at 15² / 31² / 47² (orders 1.70, 1.81). Start: the zero interior. Neither
  default RMTR nor MG/OPT is level independent on it (tests/test_multilevel_convergence.py;
  the smoother, not the coarse problem, is the cause: :mod:`ml2bench.problems.grid.twogrid`).
  ``scherk_a`` (argument of :func:`grid_hierarchy`) sets the steepness, slopes up to
  tan(a/2): default MG/OPT is level independent up to a = 1.6 (the test module's table).

The energies are weighted by h^d so that the coarse energy approximates E_h(P y) variationally:
restrict gradients with Pᵀ (``grad_restriction="variational"``), iterates by injection.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ml2bench.core.hierarchy import Hierarchy
from ml2bench.core.objective import Objective, WorkCounter
from ml2bench.multilevel.grid import GridTransfer, grid_sizes, max_grid_levels

KINDS = ("poisson", "fas", "cubic", "varcoef", "minsurf", "scherk")
GAMMA = 10.0
SCHERK_A = 2.8  # Scherk parameter a: boundary slopes up to tan(a/2) = 5.8


@dataclass
class UnitBatch:
    """The single "sample" of a grid problem (the energy needs no data)."""

    x: Tensor
    size: int = 1


class GridFunction(nn.Module):
    """Holds the vector of interior nodal values ``u``; forward ignores its input and returns u."""

    def __init__(self, n_unknowns: int, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.u = nn.Parameter(torch.zeros(n_unknowns, dtype=dtype))

    def forward(self, inp: Tensor) -> Tensor:  # noqa: ARG002 - the energy needs no input
        return self.u


def nodes(n: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """Interior nodes x_i = i h, i = 1..n, h = 1/(n+1)."""
    return torch.arange(1, n + 1, dtype=dtype) / (n + 1)


def _mesh(n: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    x = nodes(n, dtype)
    return torch.meshgrid(x, x, indexing="ij")


def exact_solution(
    kind: str, n: int, dim: int, dtype: torch.dtype = torch.float64, scherk_a: float = SCHERK_A
) -> Tensor:
    """Exact solution of the continuous problem at the interior nodes (flat)."""
    if kind == "poisson":
        if dim == 1:
            return torch.sin(math.pi * nodes(n, dtype))
        X, Y = _mesh(n, dtype)
        return (torch.sin(math.pi * X) * torch.sin(math.pi * Y)).reshape(-1)
    if kind == "fas":
        X, Y = _mesh(n, dtype)
        return ((X**2 - X**3) * torch.sin(3 * math.pi * Y)).reshape(-1)
    if kind in ("cubic", "varcoef"):
        X, Y = _mesh(n, dtype)
        return (torch.sin(math.pi * X) * torch.sin(math.pi * Y)).reshape(-1)
    if kind == "scherk":
        X, Y = _mesh(n, dtype)
        return scherk(X, Y, scherk_a).reshape(-1)
    raise ValueError(f"no exact solution for {kind!r}")


def scherk(X: Tensor, Y: Tensor, a: float = SCHERK_A) -> Tensor:
    """Scherk's surface u = ln(cos(a(y − ½)) / cos(a(x − ½))) / a, an exact solution of the
    minimal surface equation on the unit square for a < π; its slopes reach tan(a/2)."""
    return torch.log(torch.cos(a * (Y - 0.5)) / torch.cos(a * (X - 0.5))) / a


def right_hand_side(kind: str, n: int, dim: int, dtype: torch.dtype = torch.float64) -> Tensor:
    if kind == "poisson":
        if dim == 1:
            return math.pi**2 * torch.sin(math.pi * nodes(n, dtype))
        X, Y = _mesh(n, dtype)
        return (2 * math.pi**2 * torch.sin(math.pi * X) * torch.sin(math.pi * Y)).reshape(-1)
    if kind == "fas":
        X, Y = _mesh(n, dtype)
        s = torch.sin(3 * math.pi * Y)
        u = (X**2 - X**3) * s
        lap = (2 - 6 * X) * s - 9 * math.pi**2 * (X**2 - X**3) * s
        return (-lap + GAMMA * u * torch.exp(u)).reshape(-1)
    if kind == "cubic":
        u = exact_solution("cubic", n, 2, dtype)
        return 2 * math.pi**2 * u + u**3
    if kind == "varcoef":  # f = −a Δu − ∇a·∇u + u for u = sin(πx) sin(πy)
        X, Y = _mesh(n, dtype)
        pi = math.pi
        u = torch.sin(pi * X) * torch.sin(pi * Y)
        a_x = 2.7 * pi * torch.cos(3 * pi * X) * torch.cos(2 * pi * Y)
        a_y = -1.8 * pi * torch.sin(3 * pi * X) * torch.sin(2 * pi * Y)
        u_x = pi * torch.cos(pi * X) * torch.sin(pi * Y)
        u_y = pi * torch.sin(pi * X) * torch.cos(pi * Y)
        return (2 * pi**2 * coefficient(X, Y) * u - a_x * u_x - a_y * u_y + u).reshape(-1)
    if kind in ("minsurf", "scherk"):
        return torch.zeros(n * n, dtype=dtype)
    raise ValueError(f"unknown kind {kind!r}")


def coefficient(X: Tensor, Y: Tensor) -> Tensor:
    """The ``varcoef`` diffusion coefficient a = 1 + 0.9 sin(3πx) cos(2πy)."""
    return 1 + 0.9 * torch.sin(3 * math.pi * X) * torch.cos(2 * math.pi * Y)


def edge_coefficients(n: int, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """a at the midpoints of the x-edges ((n+1) × n, between nodes i and i+1 along x) and of the
    y-edges (n × (n+1)), including the edges to the boundary."""
    h = 1.0 / (n + 1)
    mid = (torch.arange(0, n + 1, dtype=dtype) + 0.5) * h
    node = torch.arange(1, n + 1, dtype=dtype) * h
    ax = coefficient(*torch.meshgrid(mid, node, indexing="ij"))
    ay = coefficient(*torch.meshgrid(node, mid, indexing="ij"))
    return ax, ay


def _edge_energy_2d(U: Tensor) -> Tensor:
    """½ Σ over all grid edges (incl. those to the zero boundary) of the squared difference."""
    pad = torch.nn.functional.pad(U, (1, 1, 1, 1))
    dx = pad[1:, 1:-1] - pad[:-1, 1:-1]
    dy = pad[1:-1, 1:] - pad[1:-1, :-1]
    return 0.5 * ((dx**2).sum() + (dy**2).sum())


def _minsurf_boundary(n: int, dtype: torch.dtype) -> Tensor:
    """Dirichlet data on the (n+2)² grid including boundary nodes (zero inside)."""
    t = torch.arange(0, n + 2, dtype=dtype) / (n + 1)
    X, Y = torch.meshgrid(t, t, indexing="ij")
    G = X * (1 - X) + Y**2
    G[1:-1, 1:-1] = 0.0
    return G


def _scherk_boundary(n: int, dtype: torch.dtype, a: float = SCHERK_A) -> Tensor:
    """Scherk data on the (n+2)² grid including boundary nodes (zero inside)."""
    t = torch.arange(0, n + 2, dtype=dtype) / (n + 1)
    X, Y = torch.meshgrid(t, t, indexing="ij")
    G = scherk(X, Y, a)
    G[1:-1, 1:-1] = 0.0
    return G


def energy_fn(
    kind: str, n: int, dim: int, dtype: torch.dtype = torch.float64, scherk_a: float = SCHERK_A
) -> Callable[[Tensor], Tensor]:
    """The discrete energy E_h(u) of a flat vector u (see module docstring; ``scherk_a``: the
    steepness of the ``scherk`` data)."""
    h = 1.0 / (n + 1)
    f = right_hand_side(kind, n, dim, dtype)
    if kind == "poisson" and dim == 1:

        def energy(u: Tensor) -> Tensor:
            pad = torch.nn.functional.pad(u, (1, 1))
            return 0.5 / h * ((pad[1:] - pad[:-1]) ** 2).sum() - h * (f.to(u) * u).sum()

        return energy
    if dim != 2:
        raise ValueError(f"{kind!r} is a 2-D problem")
    if kind == "poisson":

        def energy(u: Tensor) -> Tensor:
            return _edge_energy_2d(u.reshape(n, n)) - h * h * (f.to(u) * u).sum()

        return energy
    if kind == "fas":

        def energy(u: Tensor) -> Tensor:
            return _edge_energy_2d(u.reshape(n, n)) + h * h * (GAMMA * (u - 1) * torch.exp(u) - f.to(u) * u).sum()

        return energy
    if kind == "cubic":

        def energy(u: Tensor) -> Tensor:
            return _edge_energy_2d(u.reshape(n, n)) + h * h * (0.25 * u**4 - f.to(u) * u).sum()

        return energy
    if kind == "varcoef":
        ax, ay = edge_coefficients(n, dtype)

        def energy(u: Tensor) -> Tensor:
            pad = torch.nn.functional.pad(u.reshape(n, n), (1, 1, 1, 1))
            dx = pad[1:, 1:-1] - pad[:-1, 1:-1]
            dy = pad[1:-1, 1:] - pad[1:-1, :-1]
            return (
                0.5 * ((ax.to(u) * dx**2).sum() + (ay.to(u) * dy**2).sum()) + h * h * (0.5 * u**2 - f.to(u) * u).sum()
            )

        return energy
    if kind == "minsurf":
        G = _minsurf_boundary(n, dtype)

        def energy(u: Tensor) -> Tensor:
            full = G.to(u).clone()
            full[1:-1, 1:-1] = u.reshape(n, n)
            dx = (full[1:, :-1] - full[:-1, :-1]) / h
            dy = (full[:-1, 1:] - full[:-1, :-1]) / h
            return h * h * torch.sqrt(1 + dx**2 + dy**2).sum()

        return energy
    if kind == "scherk":
        G = _scherk_boundary(n, dtype, scherk_a)

        def energy(u: Tensor) -> Tensor:  # P1 finite elements: both triangles of every cell
            full = G.to(u).clone()
            full[1:-1, 1:-1] = u.reshape(n, n)
            dx = (full[1:, :] - full[:-1, :]) / h
            dy = (full[:, 1:] - full[:, :-1]) / h
            lower = torch.sqrt(1 + dx[:, :-1] ** 2 + dy[:-1, :] ** 2)
            upper = torch.sqrt(1 + dx[:, 1:] ** 2 + dy[1:, :] ** 2)
            return 0.5 * h * h * (lower.sum() + upper.sum())

        return energy
    raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}")


def grid_objective(
    kind: str,
    n: int,
    dim: int,
    counter: WorkCounter,
    level: int = 0,
    cost_ratio: float = 1.0,
    dtype: torch.dtype = torch.float64,
    scherk_a: float = SCHERK_A,
) -> Objective:
    energy = energy_fn(kind, n, dim, dtype, scherk_a)
    model = GridFunction(n**dim, dtype)
    return Objective(
        model, lambda fmodel, batch: energy(fmodel(batch.x)), counter, n_train=1, level=level, cost_ratio=cost_ratio
    )


def grid_hierarchy(
    kind: str = "poisson",
    n_fine: int = 63,
    dim: int = 1,
    levels: int | None = None,
    grad_restriction: str = "variational",
    counter: WorkCounter | None = None,
    dtype: torch.dtype = torch.float64,
    scherk_a: float = SCHERK_A,
) -> tuple[Hierarchy, UnitBatch]:
    """A hierarchy of ``levels`` grid objectives (default: as many as fit, down to one node per
    dimension) and the batch to evaluate them on; the initial iterate is u = 0. ``scherk_a``
    (``scherk`` only): Scherk's a in (0, π), boundary slopes up to tan(a/2)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}")
    if not 0.0 < scherk_a < math.pi:
        raise ValueError(f"scherk_a must be in (0, π) (a surface over the unit square), got {scherk_a!r}")
    if kind != "poisson" and dim != 2:
        raise ValueError(f"{kind!r} is a 2-D problem")
    levels = max_grid_levels(n_fine) if levels is None else levels
    sizes = grid_sizes(n_fine, levels)
    counter = counter or WorkCounter()
    objectives = [
        grid_objective(kind, n, dim, counter, level=l, cost_ratio=(n / n_fine) ** dim, dtype=dtype, scherk_a=scherk_a)
        for l, n in enumerate(sizes)
    ]
    transfers = [GridTransfer(sizes[l + 1], dim, grad_restriction) for l in range(levels - 1)]
    return Hierarchy(objectives, transfers, counter), UnitBatch(torch.zeros(1, dtype=dtype))


def laplacian_2d(n: int):
    """Sparse 5-point stencil matrix [−1; −1 4 −1; −1] (scipy CSR) on n² interior nodes."""
    import scipy.sparse as sp

    T = sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1])
    I = sp.identity(n)
    return (sp.kron(T, I) + sp.kron(I, T)).tocsr()


_REACTION = {  # c(u) and c'(u) of −Δu + c(u) = f
    "fas": (lambda u: GAMMA * u * np.exp(u), lambda u: GAMMA * (1 + u) * np.exp(u)),
    "cubic": (lambda u: u**3, lambda u: 3 * u**2),
}


def newton_solve_fas(n: int, tol: float = 1e-12, max_iter: int = 50, kind: str = "fas") -> np.ndarray:
    """Discrete solution of the semilinear problem ``kind`` (``fas`` or ``cubic``) on n² nodes by
    Newton's method with a sparse direct solve (reference solver, independent of the methods)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    c, dc = _REACTION[kind]
    h = 1.0 / (n + 1)
    A = laplacian_2d(n)
    f = right_hand_side(kind, n, 2).numpy()
    u = np.zeros(n * n)
    for _ in range(max_iter):
        F = A @ u + h * h * (c(u) - f)
        if np.linalg.norm(F) <= tol * h * h * max(1.0, np.linalg.norm(f)):
            break
        J = A + sp.diags(h * h * dc(u))
        u = u - spla.spsolve(J.tocsc(), F)
    return u
