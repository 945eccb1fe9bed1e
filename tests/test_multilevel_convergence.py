"""Level independence of MG/OPT on the classical problems; gradient descent for contrast; the
"two restrictions" pitfall; h² discretisation error of the nonlinear FAS problem.

Measured (float64, u₀ = 0, all levels down to one node per dimension, MG/OPT with ν1 = ν2 = 2
fixed-step gradient-descent smoothing, 5 smoothing steps on the coarsest level, Armijo search on
every level's coarse correction), V-cycles to ‖g‖ ≤ 1e-8 ‖g₀‖:
- 1-D Poisson, 63 / 127 / 255 / 511 unknowns, step h/3 (factor 2 per coarser level): 8 / 8 / 8 / 8
- 2-D Poisson, 31² / 63² / 127² unknowns, step 0.2: 12 / 12 / 12
- 2-D nonlinear FAS problem (γ = 10), 31² / 63²: 11 / 11
- 2-D Poisson 31² with full weighting (R_g = Pᵀ/4) instead of Pᵀ: not reached in 200 cycles
  (‖g‖/‖g₀‖ ≈ 4e-5 after 200; 3.9e-2 on 63²).
Gradient descent (step 0.2) to ‖g‖ ≤ 1e-3 ‖g₀‖ on 2-D Poisson needs ≈4× more iterations per
refinement (15² / 31² / 63²; asserted ratio ≥ 3).
RMTR with L-SR1/L-BFGS smoothing is *not* level independent on these problems (measured to
1e-6 on 1-D Poisson, defaults: 5 cycles on 63 unknowns, no convergence in 60 cycles on 255;
from the random start below, L-BFGS: 15 / 34 / >40 cycles on 63 / 127 / 255): the quasi-Newton
TR smoothing steps are rejected on the stiff high-frequency modes, the shared fine radius
collapses and with it the admissible coarse step.

RMTR with the exact second-order model (``model="hessian"``: Hessian-vector products, the
Taylor models of Gratton–Sartenaer–Toint) and Steihaug–Toint CG capped at ``cg_max_iter = 2``
iterations per TR step as the smoother *is* level independent (all other parameters default:
ν1 = ν2 = 1, 5 TR iterations on the coarsest level, Δ₀ = 1, κ_g = 1/8). Measured from the random
start u₀ ~ U[−1, 1] (seed 0; every frequency present), V-cycles to ‖g‖ ≤ 1e-8 ‖g₀‖, with MG/OPT
(the settings above) from the same start for comparison:
- 1-D Poisson 63 / 127 / 255 / 511: RMTR 6 / 6 / 6 / 6 (≈ 84–86 work units); MG/OPT 7 / 7 / 7 / 7
- 2-D Poisson 31² / 63² / 127²:     RMTR 8 / 8 / 8 (≈ 75 work units);       MG/OPT 9 / 9 / 9
- 2-D FAS problem 31² / 63²:        RMTR 8 / 8;                              MG/OPT 9 / 9
CG caps 1 (the Cauchy point: a steepest-descent smoother with exact model line search) / 3 / 5 give
8–9 / 5–6 / 5 cycles in 1-D and 16–17 / 6–7 / 5–6 in 2-D, still level independent; with cap 50 CG
is no longer a smoother but an inner solver (4–5 cycles, work growing with the grid).
From u₀ = 0 the counts are 6 / 6 / 8 / 9 (1-D) and 8 / 9 / 10 (2-D): the 2-norm radius has to
grow from Δ₀ = 1 to ‖u*‖ ∝ √(unknowns), a log-factor that is a property of the trust region,
not of the hierarchy (and with Δ₀ = 100 one cycle suffices: the right-hand side is a discrete
eigenvector, which CG solves in one iteration, so the zero start does not test the smoother).
"""
import numpy as np
import torch

from ml2bench.methods import METHODS
from ml2bench.multilevel.testproblems import exact_solution, grid_hierarchy, newton_solve_fas


def cycles(kind, n, dim, hp, tol=1e-8, maxit=40, grad_restriction="variational"):
    H, batch = grid_hierarchy(kind, n, dim, grad_restriction=grad_restriction)
    x0 = H.fine.initial_x()
    g0 = float(H.fine.loss_grad(x0, batch)[1].norm())
    m = METHODS.get("mgopt")(H, x0, dict(hp, levels=H.levels, grad_tol=tol * g0))
    for k in range(1, maxit + 1):
        if m.step(batch).converged:
            return k, m
    return None, m


def test_mgopt_level_independent_1d_poisson():
    counts = [cycles("poisson", n, 1, {"smoother": "gd", "lr": 1 / (3 * (n + 1)), "lr_level_factor": 2.0})[0]
              for n in (63, 127, 255, 511)]
    assert None not in counts, counts
    assert max(counts) <= 12 and max(counts) - min(counts) <= 2, counts


def test_mgopt_level_independent_2d_poisson_and_full_weighting_stalls():
    counts = [cycles("poisson", n, 2, {"smoother": "gd", "lr": 0.2})[0] for n in (31, 63, 127)]
    assert None not in counts, counts
    assert max(counts) <= 16 and max(counts) - min(counts) <= 2, counts
    k_fw, _ = cycles("poisson", 31, 2, {"smoother": "gd", "lr": 0.2}, maxit=3 * max(counts),
                     grad_restriction="full_weighting")
    assert k_fw is None  # the pitfall: coarse curvature 4× off, the cycle stalls


def test_gradient_descent_iterations_grow_4x_per_refinement():
    iters = []
    for n in (15, 31, 63):
        H, batch = grid_hierarchy("poisson", n, 2, levels=1)
        x = H.fine.initial_x()
        f, g = H.fine.loss_grad(x, batch)
        g0, k = float(g.norm()), 0
        while float(g.norm()) > 1e-3 * g0:
            x = x - 0.2 * g
            f, g = H.fine.loss_grad(x, batch)
            k += 1
        iters.append(k)
    assert iters[1] >= 3 * iters[0] and iters[2] >= 3 * iters[1], iters


def test_mgopt_level_independent_on_nonlinear_fas_problem():
    counts, errors = [], []
    for n in (31, 63):
        k, m = cycles("fas", n, 2, {"smoother": "gd", "lr": 0.2})
        counts.append(k)
        errors.append(float((m.x - exact_solution("fas", n, 2)).abs().max()))
    assert None not in counts and max(counts) - min(counts) <= 2 and max(counts) <= 16, counts
    assert 3.0 < errors[0] / errors[1] < 5.0, errors  # the converged iterate has O(h²) error


def test_fas_discretisation_error_falls_like_h_squared():
    errs = [np.abs(newton_solve_fas(n) - exact_solution("fas", n, 2).numpy()).max() for n in (15, 31, 63)]
    rates = [np.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(1.8 < r < 2.2 for r in rates), (errs, rates)


def rmtr_cycles(kind, n, dim, hp, tol=1e-8, maxit=20):
    """RMTR V-cycles to ‖g‖ ≤ tol ‖g₀‖ from u₀ ~ U[−1, 1] (seed 0); asserts monotone fine losses."""
    H, batch = grid_hierarchy(kind, n, dim)
    x0 = 2 * torch.rand(H.fine.n, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 1
    g0 = float(H.fine.loss_grad(x0, batch)[1].norm())
    m = METHODS.get("rmtr")(H, x0, dict(hp, levels=H.levels, grad_tol=tol * g0))
    losses, accepted = [], 0.0
    for k in range(1, maxit + 1):
        r = m.step(batch)
        losses.append(r.loss)
        accepted += r.info["coarse_accepted"]
        if r.converged:
            break
    losses.append(m._f)
    assert all(b <= a for a, b in zip(losses, losses[1:])), losses
    assert accepted >= k - 1  # the coarse corrections do the work, not the smoother alone
    return (k if r.converged else None), m


RMTR_HESSIAN = {"model": "hessian", "cg_max_iter": 2}


def test_rmtr_level_independent_on_poisson_1d_and_2d():
    c1 = [rmtr_cycles("poisson", n, 1, RMTR_HESSIAN)[0] for n in (63, 127, 255, 511)]
    assert None not in c1 and max(c1) <= 8 and max(c1) - min(c1) <= 1, c1
    c2 = [rmtr_cycles("poisson", n, 2, RMTR_HESSIAN)[0] for n in (31, 63, 127)]
    assert None not in c2 and max(c2) <= 10 and max(c2) - min(c2) <= 1, c2


def test_rmtr_level_independent_on_nonlinear_fas_problem():
    counts, errors = [], []
    for n in (31, 63):
        k, m = rmtr_cycles("fas", n, 2, RMTR_HESSIAN)
        counts.append(k)
        errors.append(float((m.x - exact_solution("fas", n, 2)).abs().max()))
    assert None not in counts and max(counts) <= 10 and max(counts) - min(counts) <= 1, counts
    assert 3.0 < errors[0] / errors[1] < 5.0, errors  # converged to the discrete solution: O(h²) error
