"""Moré–Garbow–Hillstrom badly scaled problems: no false convergence, and L-BFGS against scipy's
L-BFGS-B as an independent peer (``python -m ml2bench.bench.mgh`` prints the full table)."""

from __future__ import annotations

import math

import pytest
import torch

from ml2bench.bench.mgh import METHOD_ROWS, PROBLEMS, first_reaching, run_method, run_scipy
from ml2bench.core.config import RunConfig
from ml2bench.core.runner import run

MINIMISERS = {  # MGH (1981) and the problems' definitions; Powell's to the published 7 digits
    "rosenbrock": (1.0, 1.0),
    "powell_badly_scaled": (1.098159e-5, 9.106146),
    "brown_badly_scaled": (1e6, 2e-6),
    "beale": (3.0, 0.5),
    "wood": (1.0, 1.0, 1.0, 1.0),
}
STARTS = {  # f(x₀) at the standard starting points (Powell's by hand: 1 + (e⁻¹ − 0.0001)²)
    "rosenbrock": 24.2,
    "powell_badly_scaled": 1 + (math.exp(-1) - 1e-4) ** 2,
    "brown_badly_scaled": 999998000003.0,
    "beale": 14.203125,
    "wood": 19192.0,
}


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_problems_have_their_published_start_and_minimum(name):
    p = PROBLEMS[name]
    x0 = torch.tensor(p.x0, dtype=torch.float64)
    assert float(p.f(x0)) == pytest.approx(STARTS[name], rel=1e-8)
    xs = torch.tensor(MINIMISERS[name], dtype=torch.float64, requires_grad=True)
    value = p.f(xs)
    (g,) = torch.autograd.grad(value, xs)
    # Powell's minimiser is known to 7 digits only: f there is ~1e-9, not 0
    assert float(value.detach()) - p.fstar <= (1e-8 if name == "powell_badly_scaled" else 1e-20)
    if name != "powell_badly_scaled":
        assert float(g.norm()) <= 1e-9


@pytest.mark.parametrize("label", sorted(METHOD_ROWS))
@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_no_method_claims_convergence_away_from_the_minimum(name, label):
    """Before: tr (L-BFGS model) claimed convergence at f = 8e11, ‖g‖ = 2e6 (Brown badly scaled)
    and f = 5e-6 (Powell badly scaled). A run may stop or run out of evaluations; it must not
    say converged while f − f* > 1e-6·max(1, |f*|), and a stop must name its reason."""
    method, hp = METHOD_ROWS[label]
    r = run_method(method, hp, name, max_evals=2000)
    fstar = PROBLEMS[name].fstar
    if r["converged"]:
        assert r["f"] - fstar <= 1e-6 * max(1.0, abs(fstar)), r
    assert r["stop_reason"], r
    assert math.isfinite(r["f"])


def test_lbfgs_on_rosenbrock_needs_at_most_1_3_times_scipy_evaluations():
    """Same memory (10 pairs) as scipy's L-BFGS-B; both counted to the first evaluated point with
    f ≤ 1e-10. Measured: 44 (ml2bench) vs 44 (scipy 1.x); torch.optim.LBFGS charged 79."""
    ours = run_method("lbfgs", {"history_size": 10}, "rosenbrock")
    peer = run_scipy("rosenbrock", memory=10)
    k_ours, k_peer = first_reaching(ours["log"], 1e-10), first_reaching(peer["log"], 1e-10)
    assert k_peer is not None and k_ours is not None, (ours["f"], peer["f"])
    assert k_ours <= 1.3 * k_peer, (k_ours, k_peer)
    assert ours["evals"] == len(ours["log"]) == ours["log"][-1][1]  # every evaluation made is charged, once


@pytest.mark.parametrize("name", ["wood", "beale", "brown_badly_scaled"])
def test_lbfgs_reaches_the_minimum_like_scipy(name):
    """Measured (evaluations to f ≤ 1e-10, ml2bench vs scipy): wood 111 vs 112, beale 15 vs 15,
    brown badly scaled 18 vs 25."""
    ours = run_method("lbfgs", {}, name)
    peer = run_scipy(name, memory=10)
    k_ours, k_peer = first_reaching(ours["log"], 1e-10), first_reaching(peer["log"], 1e-10)
    assert k_ours is not None and k_ours <= 1.3 * k_peer, (k_ours, k_peer)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lbfgs_trains_the_mlp_full_batch(small_mlp, dtype):
    small_mlp.update(method="lbfgs", dtype=dtype, budget={"iterations": 30})
    result = run(RunConfig.from_dict(small_mlp))
    h, s = result.history, result.summary.iloc[0]
    assert s["status"] in ("budget_exhausted", "stopped"), s["error"]
    # measured: 2.306 → 0.226 (float32) and 0.225 (float64) in 30 iterations, 37 evaluations;
    # run on, float64 ends ok/grad_tol at 7e-11 after 88 iterations, float32 stopped/no_decrease at 9e-10
    assert h["train_loss"].iloc[-1] < 0.2 * h["train_loss"].iloc[0], (h["train_loss"].iloc[[0, -1]], s["stop_reason"])


def test_lbfgs_backs_off_from_exploding_trials():
    """Chebyquad (n = 8) from 100·x₀ (f₀ = 3e38): the quasi-Newton step of length 1 overflows. Measured:
    f* reached in 994 evaluations, 13 of them non-finite; before the back-off, torch's strong-Wolfe
    search interpolated between overflowed values, 2752 of 3017 evaluations were inf or NaN, and the
    run ended at f = 6e25 (scipy's L-BFGS-B m = 10: 228 evaluations)."""
    from ml2bench.bench.mgh import full_set

    problem = full_set(100)["chebyquad_n8"]
    values = [v for v, _ in run_method("lbfgs", {}, problem.name, 1500, problem=problem)["log"]]
    assert min(values) <= problem.fstar + 1e-8
    assert sum(not math.isfinite(v) for v in values) <= 0.05 * len(values)


@pytest.mark.parametrize("method,hp", [("lbfgs", {}), ("tr", {}), ("tr", {"model": "hessian"})])
def test_a_start_where_the_loss_overflows_stops_as_nonfinite(method, hp):
    """f(x₀) = inf (Jennrich–Sampson from 100·x₀ overflows the same way): a clear stop, not a
    ZeroDivisionError in the line search (lbfgs) or a misleading 'roundoff' (tr)."""
    from ml2bench.bench.mgh import MGHProblem

    problem = MGHProblem("overflow", (1.0, 0.0), 0.0, lambda x: torch.exp(1000 * x[0]) + x[1] ** 2)
    r = run_method(method, hp, problem.name, 20, problem=problem)
    assert r["stop_reason"] == "nonfinite" and not r["converged"]
    assert r["evals"] == 1  # nothing but the start was evaluated


FULL_STARTS = {  # f(x₀) published by Moré, Garbow & Hillstrom (1981) for some of the 35 problems
    "rosenbrock": 24.2,
    "freudenstein_roth": 400.5,
    "beale": 14.203125,
    "helical_valley": 2500.0,
    "powell_singular": 215.0,
    "wood": 19192.0,
    "watson_n6": 30.0,
    "watson_n9": 30.0,
    "ext_rosenbrock_n10": 121.0,
    "broyden_tridiag_n10": 21.0,
    "broyden_banded_n10": 360.0,
    "linear_full_rank_n10": 50.0,
}


def test_full_set_has_the_35_problems_at_their_published_starts():
    from ml2bench.bench.mgh import full_set
    from ml2bench.bench.mgh_problems import TABLE

    assert sorted({num for _, num, *_ in TABLE}) == list(range(1, 36))
    problems = full_set()
    for name, f0 in FULL_STARTS.items():
        p = problems[name]
        assert float(p.f(torch.tensor(p.x0, dtype=torch.float64))) == pytest.approx(f0, rel=1e-12), name
    assert full_set(10)["rosenbrock"].x0 == (-12.0, 10.0)


@pytest.mark.parametrize("label", ["lbfgs", "tr-lbfgs"])
def test_no_false_convergence_on_the_full_mgh_set(label):
    """The default L-BFGS and trust region on all 35 problems (37 runs) from the standard starts:
    a run that claims convergence ends within 1e-6·max(1, |f_ref|) of f* or of a known local minimum
    (the issue's criterion on the whole set; measured by an outside review: it always holds)."""
    from ml2bench.bench.mgh import full_set
    from ml2bench.bench.mgh_problems import LOCAL

    method, hp = METHOD_ROWS[label]
    claims = 0
    for name, problem in full_set().items():
        r = run_method(method, hp, name, max_evals=600, problem=problem)
        if r["converged"]:
            claims += 1
            at_min = r["f"] - problem.fstar <= 1e-6 * max(1.0, abs(problem.fstar))
            # the local minima are known to the literature's 6 digits only
            at_local = name in LOCAL and abs(r["f"] - LOCAL[name]) <= 1e-5 * max(1.0, abs(LOCAL[name]))
            assert at_min or at_local, (name, r["f"], problem.fstar, LOCAL.get(name))
    assert claims >= 2  # the test sees claims to judge (measured: lbfgs 2, the linear problems; tr 29)


def test_an_exploding_trial_does_not_lock_the_sr1_model():
    """Osborne 1 (MGH 17), tr with L-SR1: the first trial explodes (f ≈ 1e42 against 0.88); its pair
    set δ = 1e15 and every later step was 4e-13 long, accepted with ρ ≈ 2, for the whole budget at
    f = f₀ = 0.879. Without that pair: f = 6.0e-5 (f* = 5.46e-5) in 996 evaluations (measured)."""
    from ml2bench.bench.mgh import full_set

    problem = full_set()["osborne1"]
    r = run_method("tr", {"qn": "lsr1", "grad_tol": 1e-10}, "osborne1", max_evals=1200, problem=problem)
    assert r["f"] < 1e-4, r["f"]
