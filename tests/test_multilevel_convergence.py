"""Level independence of MG/OPT and RMTR on the classical problems; gradient descent for contrast;
the "two restrictions" pitfall; h² discretisation error of the nonlinear problems.

Every count below was measured on this code (float64, all levels down to one node per dimension,
the coarsest level solved to ``coarse_rtol`` = 0.1 with at most ``coarse_steps`` = 50 steps;
with the default ``levels=3`` instead of all levels the cap matters: MG/OPT 7 / 7 cycles on
63² / 127² Poisson with 50, 10 / 19 with 5; RMTR 7 / 7 against 10 / 17);
the tests allow one cycle more than measured. Reproduce the 2-D default rows, and 255², with
``python -m ml2bench.bench multilevel --grid --sizes 31,63,127,255``.

MG/OPT with ν1 = ν2 = 2 fixed-step gradient-descent smoothing, from u₀ = 0, V-cycles to
‖g‖ ≤ 1e-8 ‖g₀‖:
- 1-D Poisson, 63 / 127 / 255 / 511 unknowns, step h/3 (factor 2 per coarser level): 9 / 9 / 9 / 9
- 2-D Poisson, 31² / 63² / 127², step 0.2: 12 / 12 / 12
- 2-D nonlinear FAS problem (γ = 10), 31² / 63²: 11 / 11
- 2-D Poisson 31² with full weighting (R_g = Pᵀ/4) instead of Pᵀ: not reached in 36 cycles.
Gradient descent (step 0.2) to ‖g‖ ≤ 1e-3 ‖g₀‖ on 2-D Poisson needs ≈4× more iterations per
refinement (15² / 31² / 63²; asserted ratio ≥ 3).

Defaults (MG/OPT: one L-BFGS trust-region step as the smoother, ν1 = ν2 = 2; RMTR: L-BFGS TR
smoothing, ν1 = ν2 = 2), from u₀ ~ U[−1, 1] (seed 0; every frequency present), V-cycles (work
units) to ‖g‖ ≤ 1e-8 ‖g₀‖, 31² / 63² / 127² (/ 255² from the bench):
- MG/OPT: Poisson, FAS, cubic: 7 / 7 / 7 (48–50 work units)
- RMTR:   Poisson 7 / 6 / 6, FAS 7 / 7 / 6, cubic 7 / 6 / 6 (42–49 work units);
  255² (bench): Poisson, FAS, cubic 7 (50); MG/OPT 7 (50). The L-BFGS TR path is sensitive to
  round-off; these counts are the same with one thread and with two.
  (With ν1 = ν2 = 1: 10 / 11 / 11, 43–48 work units; before RMTR's coarse-correction pairs stopped
  resetting the smoothers' L-BFGS scaling δ: Poisson 16 / 17 / 18, FAS 16 / 14 / 17, cubic
  14 / 17 / 16, 55–74 work units.)
RMTR with the exact Hessian (``model="hessian"``, ``cg_max_iter=2``): 1-D Poisson 63…511 4 / 5 / 5 / 5;
2-D Poisson 6 / 6 / 6 (155–161 work units, each product charged at its measured ratio to a
gradient); FAS 6 / 6 (31² / 63²).

Minimal surface (data x(1 − x) + y², u₀ = 0) is *not* level independent with any smoother here:
MG/OPT 27 / 37 / 53 cycles (186 / 262 / 384 work units) at 31² / 63² / 127² (one thread; 28 at
31² with two), RMTR (L-BFGS) 26 / 40 / 52 (174 / 276 / 362), RMTR (Hessian, CG cap 2) 40 / 67 at
31² / 63² (with ν = 1: 67 / 121; before the decoupling below: 73 / 180). Its
linearisation is anisotropic where |∇u| is large, which point smoothers with standard
coarsening do not handle (line smoothers or semi-coarsening would).
With steep data (Scherk's surface, ``scherk``, slopes up to 5.8 per component at the corners;
an exact solution, discrete error O(h²) checked) it is worse: default MG/OPT 30 / 49 / 68 cycles
at 31² / 63² / 127², default RMTR 31 / 48 / 67.
How steep is too steep — Scherk's a (slopes up to tan(a/2)), default methods from the zero
interior, V-cycles (work units) at 31² / 63² / 127²
(``python -m ml2bench.bench multilevel --grid --problems scherk --scherk-a 1,1.6,2,2.4,2.8``):

    a (slope)    MG/OPT                          RMTR
    1.0 (0.55)   7 (48) / 9 (63) / 10 (70)       7 (48) / 9 (63) / 11 (77)
    1.6 (1.03)   9 (62) / 11 (78) / 12 (85)      9 (61) / 10 (70) / 12 (84)
    2.0 (1.56)   11 (76) / 14 (98) / 18 (131)    11 (75) / 14 (97) / 16 (112)
    2.4 (2.57)   15 (104) / 21 (148) / 29 (211)  16 (109) / 22 (152) / 27 (188)
    2.8 (5.80)   30 (205) / 49 (342) / 68 (486)  31 (211) / 48 (331) / 67 (466)

Both meet "±2 cycles, ≤ 100 work units" up to a = 1.6 (46° slopes). Two effects
add up. (i) The start: the zero interior jumps by the data at the boundary, slopes |g|/h in the
first cells, a pre-asymptotic phase that grows with n (at a = 2, 127², MG/OPT's first five coarse
corrections are cut to α ≈ 0.35 by the line search); from u* + 0.01·U[−1, 1] instead, a = 2:
MG/OPT 11 / 11 / 12, RMTR 12 / 13 / 15. (ii) The anisotropy: W = 1 + |∇u|² up to 5.9 / 14 / 68 at
a = 2 / 2.4 / 2.8; from u* + 0.01·U[−1, 1], a = 2.4: MG/OPT 16 / 19 / 19, a = 2.8: 30 / 40 / 48
(RMTR 28 / 39 / 51)
(the two-grid analysis below). A smooth start (the discrete harmonic extension of the data)
does not remove (i) by much: MG/OPT a = 2: 11 / 12 / 14. The two-grid
analysis (ml2bench.problems.grid.twogrid) shows why: the coarse problem is right (Galerkin and
rediscretised coarse Hessians give the same two-grid rate), the smoothing is not (Richardson
two-grid rate 0.966 at 31², 0.921 at 15²; cubic 0.176). So issue 10's "level independent also on
the minimal surface with steep data" is NOT met; the tests below record the finding.
On ``minsurf`` the per-cycle history of default RMTR (‖g‖/‖g₀‖ after each V-cycle) shows both
effects: a plateau near 1 for 4 / 7 / ~20 cycles at 31² / 63² / 127², then a rate of 0.46 / 0.58 /
0.63 per cycle. Three more remedies were measured and do not help (RMTR, ``minsurf``,
31² / 63² / 127²): a nested-iteration start (each coarser grid solved to 1e-3 of its own start
gradient, prolongated; the classical cure for a pre-asymptotic start) 26 / 35 / 44 fine cycles and
189 / 262 / 340 work units in all (the interpolated start has a *larger* fine gradient than the
zero interior, 2 / 3 / 4 ‖g₀‖, and the plateau remains);
the smoothing steps in Jacobi-scaled variables (diag ∇²m from 9 coloured Hessian-vector
products per cycle, not even charged) 26 / 34 / 45, and on Scherk a = 2.8 44 / 62 / 79 (worse);
ν1 = ν2 = 4: 15 / 21 / 32 cycles, 180 / 255 / 390 work units. What remains untried needs the
assembled Hessian (line or ILU smoothing) or semi-coarsening, and costs more per cycle than the
≤ 100 work units allow: assembling a 9-point Hessian alone is 9 products ≈ 20 work units.

Varying stiffness alone (``varcoef``: −div(a∇u) + u = f, a smooth coefficient of contrast 19, linear
and isotropic, exact solution): MG/OPT 16 / 18 / 19 / 19, RMTR 16 / 17 / 19 / 21 cycles at
31² … 255² (109–147 work units): within ±2 up to 127² but twice the constant-coefficient count;
RMTR smoothing in Jacobi-scaled variables 9 / 10 / 11 (62–77 work units without the diagonal's
cost, 453–565 with 9 charged products per smoothing call).

Units (the last tests): the defaults behave the same with f or x rescaled (RMTR's eps_g relative
to ‖g₀‖, Δ_max = 1e10), and ``curvature_scaling`` tells which R_g a user-built hierarchy needs.

Before the RMTR coarse region was decoupled from rejected fine smoothing steps and the coarsest
level solved to a relative tolerance, RMTR with L-BFGS grew 17 → 67 cycles from 31² to 255².
"""

import numpy as np
import pytest
import torch

from ml2bench.bench.multilevel import start_seed
from ml2bench.methods import METHODS
from ml2bench.problems.grid.testproblems import exact_solution, grid_hierarchy, newton_solve_fas
from ml2bench.problems.grid.twogrid import discrete_minimiser, two_grid_rate
from ml2bench.sweep.grid_cycles import grid_cycles


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
    counts = [
        cycles("poisson", n, 1, {"smoother": "gd", "lr": 1 / (3 * (n + 1)), "lr_level_factor": 2.0})[0]
        for n in (63, 127, 255, 511)
    ]
    assert None not in counts, counts
    assert max(counts) <= 10 and max(counts) - min(counts) <= 1, counts  # measured 9 / 9 / 9 / 9


def test_mgopt_level_independent_2d_poisson_and_full_weighting_stalls():
    counts = [cycles("poisson", n, 2, {"smoother": "gd", "lr": 0.2})[0] for n in (31, 63, 127)]
    assert None not in counts, counts
    assert max(counts) <= 13 and max(counts) - min(counts) <= 1, counts  # measured 12 / 12 / 12
    k_fw, _ = cycles(
        "poisson", 31, 2, {"smoother": "gd", "lr": 0.2}, maxit=3 * max(counts), grad_restriction="full_weighting"
    )
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
    assert None not in counts and max(counts) - min(counts) <= 1 and max(counts) <= 12, counts  # measured 11 / 11
    assert 3.0 < errors[0] / errors[1] < 5.0, errors  # the converged iterate has O(h²) error


@pytest.mark.parametrize("kind", ["fas", "cubic"])
def test_discretisation_error_falls_like_h_squared(kind):
    """Newton reference (sparse direct solves, independent of the methods) against the
    manufactured exact solution: errors fall by 4 per halving of h."""
    errs = [np.abs(newton_solve_fas(n, kind=kind) - exact_solution(kind, n, 2).numpy()).max() for n in (15, 31, 63)]
    rates = [np.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(1.8 < r < 2.2 for r in rates), (errs, rates)


# measured cycles at 31² / 63² / 127² with the defaults (module docstring)
DEFAULT_CYCLES = {
    ("mgopt", "poisson"): (7, 7, 7),
    ("mgopt", "fas"): (7, 7, 7),
    ("mgopt", "cubic"): (7, 7, 7),
    ("rmtr", "poisson"): (7, 6, 6),
    ("rmtr", "fas"): (7, 7, 6),
    ("rmtr", "cubic"): (7, 6, 6),
}


@pytest.mark.parametrize("method,kind", sorted(DEFAULT_CYCLES))
def test_defaults_are_level_independent(method, kind):
    """The methods' default hyper-parameters: at most one cycle above the measurement, the
    cycle count within ±2 over the grids, at most 100 work units, and (cubic) the converged
    iterate is the discrete solution: its error to u* falls like h². "Within ±2": every count
    within 2 of the median count over the grids."""
    sizes = (31, 63, 127)
    runs = [grid_cycles(method, kind, n, {}, rtol=1e-8, max_cycles=30, seed=start_seed(kind)) for n in sizes]
    counts = [r.cycles for r in runs]
    assert None not in counts, [(r.stop_reason, r.rel_grad) for r in runs]
    assert all(c <= m + 1 for c, m in zip(counts, DEFAULT_CYCLES[method, kind])), counts
    assert all(abs(c - sorted(counts)[1]) <= 2 for c in counts), counts
    assert max(r.work_units for r in runs) <= 100, [r.work_units for r in runs]
    if kind == "cubic":
        errors = [float((r.method.x - exact_solution(kind, n, 2)).abs().max()) for r, n in zip(runs, sizes)]
        assert all(3.5 < errors[i] / errors[i + 1] < 4.5 for i in range(2)), errors


def rmtr_cycles(kind, n, dim, hp, tol=1e-8, maxit=20):  # noqa: D103
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
    assert None not in c1 and max(c1) <= 6 and max(c1) - min(c1) <= 1, c1  # measured 4 / 5 / 5 / 5
    c2 = [rmtr_cycles("poisson", n, 2, RMTR_HESSIAN)[0] for n in (31, 63, 127)]
    assert None not in c2 and all(c <= m + 1 for c, m in zip(c2, (6, 6, 6))), c2  # measured 6 / 6 / 6


def test_rmtr_level_independent_on_nonlinear_fas_problem():
    counts, errors = [], []
    for n in (31, 63):
        k, m = rmtr_cycles("fas", n, 2, RMTR_HESSIAN)
        counts.append(k)
        errors.append(float((m.x - exact_solution("fas", n, 2)).abs().max()))
    assert None not in counts and max(counts) <= 7 and max(counts) - min(counts) <= 1, counts  # measured 6 / 6
    assert 3.0 < errors[0] / errors[1] < 5.0, errors  # converged to the discrete solution: O(h²) error


@pytest.mark.slow
@pytest.mark.parametrize("method,measured", [("mgopt", 7), ("rmtr", 7)])
def test_defaults_on_255_squared_poisson(method, measured):
    """255² (65,025 unknowns) with the defaults: as many cycles as on the coarser grids
    (measured MG/OPT 7, 50 work units; RMTR 7, 50 work units)."""
    out = grid_cycles(method, "poisson", 255, {}, rtol=1e-8, max_cycles=30)
    assert out.cycles is not None and out.cycles <= measured + 1, (out.stop_reason, out.rel_grad)
    assert out.work_units <= 100


@pytest.mark.parametrize("method,measured", [("mgopt", 28), ("rmtr", 26)])
def test_minimal_surface_converges_but_is_not_level_independent(method, measured):
    """Minimal surface from u₀ = 0 at 31² (defaults): converges, MG/OPT in 28 cycles, RMTR in 26
    (measured; 37 / 40 at 63², see the module docstring: the anisotropic linearisation is not
    handled by point smoothers with standard coarsening, so this is no level-independence claim)."""
    out = grid_cycles(method, "minsurf", 31, {}, rtol=1e-8, max_cycles=measured + 1, seed=None)
    assert out.cycles is not None and out.cycles <= measured + 1, (out.stop_reason, out.rel_grad)


def test_scherk_discrete_solution_is_second_order():
    """The steep minimal surface (Scherk, a = 2.8, slopes up to tan 1.4 = 5.8 at the corners; P1
    energy) converges to the exact surface: measured max errors 3.66e-3 / 1.12e-3 / 5.40e-4 at
    15² / 31² / 47², orders 1.70 / 1.81 (pre-asymptotic towards 2; the corners are steep)."""
    sizes = (15, 31, 47)
    errs = [float((discrete_minimiser("scherk", n) - exact_solution("scherk", n, 2)).abs().max()) for n in sizes]
    orders = [np.log(errs[i] / errs[i + 1]) / np.log((sizes[i + 1] + 1) / (sizes[i] + 1)) for i in range(2)]
    assert all(o > 1.6 for o in orders) and orders[1] > orders[0], (errs, orders)


def test_minimal_surface_two_grid_diagnosis():
    """Why the minimal surfaces are not level independent: not the coarse problem, the smoother.
    At the discrete minimiser (31², ν1 = ν2 = 2, exact coarse solve; ml2bench.problems.grid.twogrid),
    measured two-grid rates:
    - cubic: Richardson (one global step, what the gradient / L-BFGS smoothers amount to) 0.176;
    - Scherk: Galerkin Pᵀ A_h P and the rediscretised coarse Hessian agree (0.966 / 0.966 Richardson,
      0.799 / 0.798 Jacobi): h² scaling, R_g = Pᵀ and the coarse boundary data are right;
    - Scherk with Richardson 0.966, and worse on the finer grid (15²: 0.921): the stiffness of the
      linearisation, W^{-1/2} across and W^{-3/2} along ∇u (W = 1 + |∇u|²), varies by up to
      W^{3/2} between the flat middle and the steep corners, so a global step barely smooths the
      soft regions; and the largest W the grid samples still grows with n (32 / 44 / 54 / 60 at
      15² / 31² / 63² / 127², limit 68), so the finer problems are harder over this range.
      A local (Jacobi) scaling helps (0.799) but the anisotropy, rotated by 45° in the corners,
      remains (point smoothers with standard coarsening cannot remove it).
    At 63² (too slow for a test: ~1 min per dense eigenvalue problem) the rates keep rising even with
    the exact coarse solve: Scherk Richardson 0.921 / 0.966 / 0.982 and Jacobi 0.698 / 0.799 / 0.858
    at 15² / 31² / 63²; the mild ``minsurf`` Richardson 0.886 / 0.936 / 0.957; cubic 0.176 / 0.178
    (31² / 63²). So no tuning of the cycle (ν, levels, coarsest solve) can make these smoothers
    level independent from 31² to 127²."""
    assert two_grid_rate("cubic", 31, "richardson") <= 0.18
    gal, red = two_grid_rate("scherk", 31, "richardson"), two_grid_rate("scherk", 31, "richardson", "rediscretised")
    assert abs(gal - red) <= 0.01 and gal >= 0.96, (gal, red)
    assert two_grid_rate("scherk", 15, "richardson") <= gal - 0.03
    jac = two_grid_rate("scherk", 31, "jacobi")
    assert jac <= gal - 0.1 and jac >= 0.75, jac


def test_default_mgopt_on_steep_minimal_surface_grows_with_the_grid():
    """Documented finding (not a level-independence claim): default MG/OPT on Scherk data from the
    zero interior converges, but its cycles grow by ~19 per refinement — measured 30 / 49 / 68
    cycles (205 / 342 / 486 work units) at 31² / 63² / 127²; default RMTR 31 / 48 / 67 cycles
    (211 / 331 / 466). Variants measured without success (31² / 63² / 127²):
    ν1 = ν2 = 3 with memory 20: 17 / 27 / 39; levels = 3 or 4: 31 / 47 / – and 32 / 46 / –;
    RMTR-Hessian (CG 2, ν = 2): 59 / – / – (≈2,000 work units); a start from the Coons interpolant of
    the data 33 / 45 / 60 ("–": not in 60 cycles). MG/OPT with an exact-diagonal Jacobi gradient smoother
    (ω = 0.6, no trust region; an uncharged oracle experiment) was slower still: 1.7e-5 / 1.5e-3 /
    2.1e-2 ‖g₀‖ after 60 cycles (on ``minsurf`` 63² it diverged to nan). Reproduce the defaults with
    ``python -m ml2bench.bench multilevel --grid --problems scherk --max-cycles 100``."""
    counts = [grid_cycles("mgopt", "scherk", n, {}, rtol=1e-8, max_cycles=50, seed=None).cycles for n in (31, 63)]
    assert None not in counts and counts[0] <= 31 and counts[1] <= 50, counts
    assert counts[1] - counts[0] >= 10, counts


@pytest.mark.parametrize("method,measured", [("mgopt", (9, 11, 12)), ("rmtr", (9, 10, 12))])
def test_defaults_level_independent_on_moderately_steep_minimal_surface(method, measured):
    """Scherk data with a = 1.6 (boundary slopes up to tan 0.8 = 1.03, steeper than 45°) from the
    zero interior: the defaults stay within ±2 cycles and ≤ 100 work units from 31² to 127²
    (measured MG/OPT 9 / 11 / 12 cycles, 62 / 78 / 85 work units; RMTR 9 / 10 / 12, 61 / 70 / 84);
    the steeper rows of the module docstring's table do not (a = 2: 11 / 14 / 18 and 11 / 14 / 16)."""
    runs = [
        grid_cycles(method, "scherk", n, {}, rtol=1e-8, max_cycles=20, seed=None, scherk_a=1.6) for n in (31, 63, 127)
    ]
    counts = [r.cycles for r in runs]
    assert None not in counts, [(r.stop_reason, r.rel_grad) for r in runs]
    assert all(c <= m + 1 for c, m in zip(counts, measured)), counts
    assert all(abs(c - sorted(counts)[1]) <= 2 for c in counts), counts
    assert max(r.work_units for r in runs) <= 100, [r.work_units for r in runs]


def scaled_poisson(
    n: int,
    c: float = 1.0,
    s: float = 1.0,
    unweighted: bool = False,
    grad_restriction: str = "variational",
    kind: str = "poisson",
):
    """2-D Poisson with energy c·s²·E(u/s): the same problem in other units (f scaled by c, the
    minimiser by s, the Hessian by c), as a user's own hierarchy would state it. ``unweighted``:
    every level's energy divided by its h² (not weighted by h^d as the package's energies)."""
    from ml2bench.core.hierarchy import Hierarchy
    from ml2bench.core.objective import Objective, WorkCounter
    from ml2bench.multilevel.grid import GridTransfer, grid_sizes, max_grid_levels
    from ml2bench.problems.grid.testproblems import GridFunction, UnitBatch, energy_fn

    sizes = grid_sizes(n, max_grid_levels(n))
    counter = WorkCounter()
    objectives = []
    for level, m in enumerate(sizes):
        energy = energy_fn(kind, m, 2)
        w = c * s * s * ((m + 1) ** 2 if unweighted else 1.0)
        loss = (lambda e, w: lambda fmodel, batch: w * e(fmodel(batch.x) / s))(energy, w)
        objectives.append(
            Objective(GridFunction(m * m), loss, counter, n_train=1, level=level, cost_ratio=(m / n) ** 2)
        )
    transfers = [GridTransfer(sizes[l + 1], 2, grad_restriction) for l in range(len(sizes) - 1)]
    return Hierarchy(objectives, transfers, counter), UnitBatch(torch.zeros(1, dtype=torch.float64))


def cycles_to_rtol(method: str, c: float, s: float, hp: dict, max_cycles: int = 30):
    H, batch = scaled_poisson(31, c, s)
    m = METHODS.get(method)(H, H.fine.initial_x(), {"levels": H.levels, "grad_rtol": 1e-8, **hp})
    for k in range(1, max_cycles + 1):
        r = m.step(batch)
        if r.stops:
            return k, r.stop_reason
    return None, "max_cycles"


def test_rmtr_does_not_depend_on_the_units_of_the_energy():
    """f scaled by 1e-6: RMTR converges as unscaled (7 cycles; measured 6). Its thresholds are
    relative to ‖g₀‖; the former absolute eps_g = 1e-12 stopped every level's smoothing once
    ‖g‖ < 1e-12, so the run stalled at ‖g‖ ≈ 3e-6 ‖g₀‖ (the contrast below, which emulates it)."""
    k, reason = cycles_to_rtol("rmtr", 1e-6, 1.0, {})
    assert reason == "grad_tol" and k <= 8
    H, batch = scaled_poisson(31, 1e-6)
    g0 = float(H.fine.loss_grad(H.fine.initial_x(), batch)[1].norm())
    assert cycles_to_rtol("rmtr", 1e-6, 1.0, {"eps_g": 1e-12 / g0})[1] == "stalled"


@pytest.mark.parametrize("method", ["rmtr", "mgopt"])
def test_multilevel_methods_do_not_depend_on_the_units_of_x(method):
    """Minimiser scaled by 1e4 (same Hessian): 9 V-cycles for both (unscaled: RMTR 7, MG/OPT 4; the
    radius grows from Δ₀ = 1 by γ₂ per good step). With the former absolute cap Δ_max = 100, RMTR
    had not converged after 100 cycles (‖g‖/‖g₀‖ = 0.69) and MG/OPT took 15."""
    k, reason = cycles_to_rtol(method, 1.0, 1e4, {})
    assert reason == "grad_tol" and k <= 10
    old = {"radius_max": 100.0, **({"coarse_radius_max": 100.0} if method == "rmtr" else {})}
    k_old, _ = cycles_to_rtol(method, 1.0, 1e4, old)
    assert k_old is None or k_old > 10


def varcoef_reference(n: int) -> np.ndarray:
    """Discrete solution of ``varcoef`` by a sparse direct solve of the assembled system
    Σ_edges a_e (e_a − e_b)(e_a − e_b)ᵀ + h² I = h² f (independent of the energy's autograd)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    from ml2bench.problems.grid.testproblems import edge_coefficients, right_hand_side

    h = 1.0 / (n + 1)
    ax, ay = (t.numpy() for t in edge_coefficients(n))
    rows, cols, vals, diag = [], [], [], np.full(n * n, h * h)
    edges = [((i - 1) * n + j, i * n + j, ax[i, j], i - 1 >= 0, i < n) for i in range(n + 1) for j in range(n)]
    edges += [(i * n + j - 1, i * n + j, ay[i, j], j - 1 >= 0, j < n) for i in range(n) for j in range(n + 1)]
    for p, q, a, p_in, q_in in edges:
        if p_in:
            diag[p] += a
        if q_in:
            diag[q] += a
        if p_in and q_in:
            rows += [p, q]
            cols += [q, p]
            vals += [-a, -a]
    A = sp.coo_matrix((vals, (rows, cols)), shape=(n * n, n * n)) + sp.diags(diag)
    return spla.spsolve(A.tocsc(), h * h * right_hand_side("varcoef", n, 2).numpy())


def test_varcoef_discrete_solution_is_second_order_and_the_energy_minimiser():
    """Measured max errors 6.75e-3 / 1.55e-3 / 3.96e-4 at 15² / 31² / 63² (orders 2.1, 1.97); the
    energy's autograd gradient vanishes at the assembled solution (a check on the energy)."""
    from ml2bench.problems.grid.testproblems import energy_fn

    errs = []
    for n in (15, 31, 63):
        u = varcoef_reference(n)
        errs.append(np.abs(u - exact_solution("varcoef", n, 2).numpy()).max())
        x = torch.tensor(u, requires_grad=True)
        (g,) = torch.autograd.grad(energy_fn("varcoef", n, 2)(x), x)
        assert float(g.norm()) < 1e-12
    rates = [np.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(1.8 < r < 2.2 for r in rates), (errs, rates)


@pytest.mark.parametrize("method,measured", [("mgopt", (16, 18)), ("rmtr", (16, 17))])
def test_varying_stiffness_costs_the_global_smoothers_twice_the_cycles(method, measured):
    """``varcoef`` (contrast 19 in a smooth coefficient; linear, isotropic): the defaults converge to
    the discrete solution in about twice the cycles of constant-coefficient problems, measured
    16 / 18 / 19 / 19 (MG/OPT) and 16 / 17 / 19 / 21 (RMTR) at 31² … 255², 109–147 work units:
    within ±2 up to 127², above 100 work units (module docstring: a global step cannot follow a
    stiffness that varies in space). Tested at 31² and 63²."""
    for n, m in zip((31, 63), measured):
        out = grid_cycles(method, "varcoef", n, {}, rtol=1e-8, max_cycles=m + 1)
        assert out.cycles is not None and 12 <= out.cycles <= m + 1, (out.stop_reason, out.rel_grad)
        assert out.work_units > 100
        err = float((out.method.x - torch.from_numpy(varcoef_reference(n))).abs().max())
        assert err < 1e-6, err  # measured 1.6e-7 / 9e-8 (MG/OPT / RMTR, 31²); discretisation error 1.6e-3


def test_curvature_scaling_names_the_gradient_restriction_an_energy_needs():
    """``curvature_scaling``: R_g must be scaled like the coarse energy against f_h∘P. The package's
    h²-weighted energies need Pᵀ (ratio ≈ 1); divided by h², Pᵀ is 4× too long a step (ratio ≈ 4)
    and full weighting Pᵀ/4 is right. RMTR with the mismatch: 31 V-cycles at 63² (16 / 31 / 60 at
    31² / 63² / 127², measured), against 7 with full weighting; MG/OPT 7 either way (its line search
    absorbs the factor)."""
    from ml2bench.multilevel.coarse import curvature_scaling

    def ratios(**kw):  # the pairs 63/31, 31/15, 15/7 (measured 0.999 / 0.994 / 0.977; ×4 unweighted;
        # the pairs down to 3² and 1² sample few nodes: 0.92, 0.75)
        H, batch = scaled_poisson(63, **kw)
        return [r["ratio"] for r in curvature_scaling(H, H.fine.initial_x(), batch)][:3]

    assert all(0.95 < r < 1.05 for r in ratios()), ratios()
    assert all(3.8 < r < 4.2 for r in ratios(unweighted=True)), ratios(unweighted=True)
    assert all(0.95 < r < 1.05 for r in ratios(unweighted=True, grad_restriction="full_weighting"))

    def rmtr_cycles_63(restriction):
        H, batch = scaled_poisson(63, unweighted=True, grad_restriction=restriction)
        x0 = 2 * torch.rand(H.fine.n, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 1
        m = METHODS.get("rmtr")(H, x0, {"levels": H.levels, "grad_rtol": 1e-8})
        for k in range(1, 41):
            if m.step(batch).converged:
                return k
        return None

    assert rmtr_cycles_63("full_weighting") <= 8
    slow = rmtr_cycles_63("variational")
    assert slow is None or slow >= 20, slow
