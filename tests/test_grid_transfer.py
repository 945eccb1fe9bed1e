"""Grid transfers of the classical test problems: R_x P = I, R_g = Pᵀ, interpolation exactness,
Galerkin property of the h-weighted 1-D energy, coarse-correction length with full weighting in 2-D."""

import numpy as np
import pytest
import torch

from ml2bench.multilevel.grid import GridTransfer, grid_sizes, max_grid_levels
from ml2bench.problems.grid.testproblems import energy_fn, grid_hierarchy


def dense(f, n):
    eye = torch.eye(n, dtype=torch.float64)
    return torch.stack([f(eye[k]) for k in range(n)], dim=1)


def hessian(kind, n, dim):
    energy = energy_fn(kind, n, dim)
    return torch.autograd.functional.hessian(energy, torch.zeros(n**dim, dtype=torch.float64))


@pytest.mark.parametrize("dim,nc", [(1, 7), (2, 3)])
def test_injection_is_left_inverse_and_restrict_grad_is_transpose(dim, nc):
    t = GridTransfer(nc, dim)
    P = t.matrix()
    assert P.shape == ((2 * nc + 1) ** dim, nc**dim)
    Rx = dense(t.restrict, (2 * nc + 1) ** dim)
    Rg = dense(t.restrict_grad, (2 * nc + 1) ** dim)
    assert torch.equal(Rx @ P, torch.eye(nc**dim, dtype=torch.float64))
    assert torch.allclose(Rg, P.T, atol=0, rtol=0)
    fw = GridTransfer(nc, dim, "full_weighting")
    assert torch.allclose(dense(fw.restrict_grad, (2 * nc + 1) ** dim), P.T / 2**dim)
    # Rx is injection: a 0/1 matrix with one 1 per row
    assert torch.equal(Rx.sum(dim=1), torch.ones(nc**dim, dtype=torch.float64))


def test_prolongation_reproduces_piecewise_linear_functions():
    nc = 7
    xc = np.arange(0, nc + 2) / (nc + 1)  # incl. boundary nodes
    xf = np.arange(1, 2 * nc + 2) / (2 * nc + 2)
    rng = np.random.default_rng(0)
    vals = np.concatenate([[0.0], rng.normal(size=nc), [0.0]])
    t1 = GridTransfer(nc, 1)
    fine = t1.prolongate(torch.tensor(vals[1:-1])).numpy()
    assert np.allclose(fine, np.interp(xf, xc, vals), atol=1e-15)
    # an affine function in the interior away from the boundary is reproduced exactly
    lin = torch.tensor(0.3 + 2.0 * xc[1:-1])
    pf = t1.prolongate(lin).numpy()
    assert np.allclose(pf[1:-1], 0.3 + 2.0 * xf[1:-1], atol=1e-14)
    # 2-D: tensor products of piecewise-linear functions are reproduced by bilinear P
    other = np.concatenate([[0.0], rng.normal(size=nc), [0.0]])
    t2 = GridTransfer(nc, 2)
    coarse = torch.tensor(np.outer(vals[1:-1], other[1:-1]).reshape(-1))
    expect = np.outer(np.interp(xf, xc, vals), np.interp(xf, xc, other)).reshape(-1)
    assert np.allclose(t2.prolongate(coarse).numpy(), expect, atol=1e-14)


def test_galerkin_property_of_h_weighted_energies():
    """1-D: Pᵀ A_h P = A_H exactly. 2-D (5-point): Pᵀ A_h P is the 9-point stencil, spectrally
    equal to A_H on smooth modes."""
    nc = 7
    P = GridTransfer(nc, 1).matrix()
    assert torch.allclose(P.T @ hessian("poisson", 2 * nc + 1, 1) @ P, hessian("poisson", nc, 1), atol=1e-12)

    P2 = GridTransfer(nc, 2).matrix()
    Ah, AH = hessian("poisson", 2 * nc + 1, 2), hessian("poisson", nc, 2)
    x = torch.linspace(0, 1, nc + 2, dtype=torch.float64)[1:-1]
    smooth = torch.outer(torch.sin(torch.pi * x), torch.sin(torch.pi * x)).reshape(-1)
    ratio = float(smooth @ (P2.T @ Ah @ P2) @ smooth) / float(smooth @ AH @ smooth)
    assert abs(ratio - 1) < 0.05


def _coarse_correction_step(grad_restriction: str, nc: int = 7) -> float:
    """Exact line-search step length along the prolongated coarse correction of a first-order
    coherent coarse model, 2-D Poisson, smooth error.

    On a quadratic, the coherent coarse model h_H(y) = f_H(y) + ⟨R_g g − ∇f_H(y0), y⟩ has the
    minimiser step e_H = −A_H⁻¹ R_g g; the fine step is P e_H and the best multiple of it is
    α* = −gᵀ P e_H / (e_Hᵀ Pᵀ A_h P e_H). α* ≈ 1 means the coarse model has the right curvature."""
    t = GridTransfer(nc, 2, grad_restriction)
    P = t.matrix()
    n = 2 * nc + 1
    Ah, AH = hessian("poisson", n, 2), hessian("poisson", nc, 2)
    x = torch.linspace(0, 1, n + 2, dtype=torch.float64)[1:-1]
    error = torch.outer(torch.sin(torch.pi * x), torch.sin(2 * torch.pi * x)).reshape(-1)
    g = Ah @ error  # gradient of the energy at x* + error
    e_H = -torch.linalg.solve(AH, t.restrict_grad(g))
    d = P @ e_H
    return float(-(g @ d) / (d @ Ah @ d))


def test_full_weighting_coarse_correction_is_four_times_too_short():
    """R_g = Pᵀ (variational) gives a coarse correction of the right length on a smooth 2-D error;
    full weighting R_g = Pᵀ/4 restricts the gradient 4× too small, so the best step along its
    correction is ≈ 4 (the curvature the coarse model sees is 4× too large).
    Measured (nc = 7, error sin πx sin 2πy): α* = 1.0312 (variational), 4.1246 (full weighting)."""
    variational = _coarse_correction_step("variational")
    full_weighting = _coarse_correction_step("full_weighting")
    assert abs(variational - 1) < 0.1, variational
    assert full_weighting == pytest.approx(4 * variational, rel=1e-12)
    assert abs(full_weighting - 4) < 0.4, full_weighting


def test_sizes_and_hierarchy():
    assert grid_sizes(63, 4) == [63, 31, 15, 7]
    assert max_grid_levels(63) == 6
    with pytest.raises(ValueError):
        grid_sizes(64, 2)
    H, batch = grid_hierarchy("poisson", 15, 2)
    assert H.levels == 4 and [o.n for o in H.objectives] == [225, 49, 9, 1]
    assert [round(o.cost_ratio, 6) for o in H.objectives] == [
        1.0,
        round(49 / 225, 6),
        round(9 / 225, 6),
        round(1 / 225, 6),
    ]
    H.objectives[1].loss_grad(torch.zeros(49, dtype=torch.float64), batch)
    assert H.counter.grad_evals == 1.0 and abs(H.counter.work_units - 49 / 225) < 1e-12
