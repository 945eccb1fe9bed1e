"""Schwarz methods: linear-algebra limits, reduction to the local solver, monotonicity, accounting."""

from __future__ import annotations

import math

import pytest
import torch

from ml2bench.core.config import RunConfig
from ml2bench.core.params import ConfigError
from ml2bench.core.runner import run
from ml2bench.dd import decomposition as ddec
from ml2bench.dd.core import combine
from ml2bench.dd.testing import UnitBatch, mlp_hierarchy, quadratic_hierarchy, spd_matrix
from ml2bench.methods import METHODS

Schwarz = METHODS.get("schwarz")
EXACT = {
    "globalization": "none",
    "local_solver": "lbfgs",
    "local_steps": 40,
    "history_size": 20,
    "tolerance_grad": 1e-13,
    "tolerance_change": 1e-30,
}


def make(hierarchy, x0, **hp):
    return Schwarz(hierarchy, x0, Schwarz.params.validate(hp, "method 'schwarz'"))


def coupled_system(sizes=(2, 3, 2), seed=1):
    n = sum(sizes)
    A = spd_matrix(n, seed=seed, cond=4.0)
    A = A + 2.0 * torch.eye(n, dtype=A.dtype)  # block Jacobi converges (not needed for the comparison)
    b = torch.linspace(-1.0, 2.0, n, dtype=A.dtype)
    x0 = torch.linspace(0.5, -0.5, n, dtype=A.dtype)
    return A, b, x0


def blocks(sizes):
    out, o = [], 0
    for s in sizes:
        out.append(slice(o, o + s))
        o += s
    return out


# --- decompositions ---------------------------------------------------------------------------


def test_layer_decomposition_groups_layers_and_overlap_counts():
    h, _, _ = mlp_hierarchy()
    obj = h.fine
    dec = ddec.layer_decomposition(obj.names, obj.numels, 2)
    assert dec.counts.tolist() == [1] * obj.n  # a partition
    # weight and bias of one layer never split; first layer (2*8+8) is in subdomain 0
    assert set(range(24)) <= set(dec.index_sets[0].tolist())
    dec_o = ddec.layer_decomposition(obj.names, obj.numels, 2, overlap=1)
    assert int(dec_o.counts.max()) == 2 and int(dec_o.counts.min()) == 1
    with pytest.raises(ConfigError, match="subdomains = 4"):
        ddec.layer_decomposition(obj.names, obj.numels, 4)
    rnd = ddec.random_decomposition(obj.n, 3, seed=0)
    assert sorted(torch.cat(rnd.index_sets).tolist()) == list(range(obj.n))
    _, _, batch = mlp_hierarchy(n=10)
    shards = [ddec.shard_batch(batch, k, 3) for k in range(3)]
    assert [s.size for s in shards] == [4, 3, 3]
    assert torch.equal(torch.cat([s.x for s in shards]), batch.x)


def test_combine_divides_by_overlap_count():
    sets = [torch.tensor([0, 1, 2]), torch.tensor([2, 3])]
    s = combine(4, sets, [torch.tensor([1.0, 1.0, 4.0]), torch.tensor([2.0, 5.0])])
    assert s.tolist() == [1.0, 1.0, 3.0, 5.0]


# --- linear-algebra limits --------------------------------------------------------------------


def test_separable_quadratic_converges_in_one_additive_step():
    sizes = (2, 3)
    A = torch.block_diag(spd_matrix(2, seed=3, cond=20.0), spd_matrix(3, seed=4, cond=20.0))
    b = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0], dtype=A.dtype)
    h, x0 = quadratic_hierarchy(A, b, sizes)
    m = make(h, x0, subdomains=2, **EXACT)
    m.step(UnitBatch())
    torch.testing.assert_close(m.x, torch.linalg.solve(A, b), atol=1e-9, rtol=0)


@pytest.mark.parametrize("variant", ["additive", "multiplicative"])
def test_exact_local_solves_equal_block_jacobi_and_gauss_seidel(variant):
    sizes = (2, 3, 2)
    A, b, x0 = coupled_system(sizes)
    h, _ = quadratic_hierarchy(A, b, sizes, x0)
    m = make(h, x0, subdomains=3, variant=variant, **EXACT)
    x = x0.clone()
    bl = blocks(sizes)
    for it in range(4):
        m.step(UnitBatch())
        if variant == "additive":  # block Jacobi: x += D⁻¹ (b − A x)
            r = b - A @ x
            x = x + torch.cat([torch.linalg.solve(A[s, s], r[s]) for s in bl])
        else:  # block Gauss–Seidel: blocks in order, each with the latest values
            x = x.clone()
            for s in bl:
                x[s] = x[s] + torch.linalg.solve(A[s, s], (b - A @ x)[s])
        torch.testing.assert_close(m.x, x, atol=1e-8, rtol=0, msg=f"{variant} iterate {it}")
    # and the two are really different iterations
    assert variant == "additive" or not torch.allclose(x, x0)


@pytest.mark.parametrize("solver", ["lbfgs", "sgd", "adam"])
def test_one_subdomain_is_the_local_solver(solver):
    h, x0, batch = mlp_hierarchy(seed=2)
    steps, lr = 4, {"lbfgs": 1.0, "sgd": 0.1, "adam": 0.01}[solver]
    m = make(h, x0, subdomains=1, globalization="none", local_solver=solver, local_steps=steps, local_lr=lr)
    obj = h.fine
    p = torch.nn.Parameter(x0.clone())
    for _ in range(3):
        m.step(batch)
        # the reference: the plain torch optimiser on the whole vector, fresh state per outer step
        if solver == "lbfgs":
            opt = torch.optim.LBFGS(
                [p],
                lr=lr,
                max_iter=steps,
                max_eval=steps + 1,
                history_size=10,
                tolerance_grad=1e-9,
                tolerance_change=1e-12,
                line_search_fn="strong_wolfe",
            )
        else:
            opt = torch.optim.SGD([p], lr=lr) if solver == "sgd" else torch.optim.Adam([p], lr=lr)

        def closure():
            f, g = obj.loss_grad(p.data, batch)
            p.grad = g
            return torch.tensor(f, dtype=torch.float64)

        for _ in range(1 if solver == "lbfgs" else steps):
            opt.step(closure)
        torch.testing.assert_close(m.x, p.data, atol=1e-12, rtol=0)
    assert not torch.allclose(m.x, x0)


# --- globalisation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variant,decomposition", [("additive", "layers"), ("multiplicative", "random"), ("additive", "data")]
)
def test_trust_region_globalisation_never_increases_f(variant, decomposition):
    h, x0, batch = mlp_hierarchy(seed=5)
    # a large radius and aggressive local SGD provoke rejected steps, which must not increase f
    m = make(
        h,
        x0,
        variant=variant,
        decomposition=decomposition,
        subdomains=3 if decomposition != "data" else 2,
        globalization="tr",
        local_solver="sgd",
        local_lr=2.0,
        local_steps=3,
        radius=5.0,
    )
    losses, rejected = [], 0
    for _ in range(7):
        res = m.step(batch)
        losses.append(res.loss)
        rejected += res.info["accepted"] < 2  # Schwarz step or global TR step rejected
    final = h.fine.loss(m.x, batch)
    losses.append(final)
    assert all(b <= a for a, b in zip(losses, losses[1:])), losses
    assert final < 0.95 * losses[0]
    assert rejected >= 1  # the test exercises the rejection branch


def test_spqn_decreases_and_beats_its_start():
    h, x0, batch = mlp_hierarchy(seed=6)
    m = make(h, x0, subdomains=3, local_steps=3)
    losses = [m.step(batch).loss for _ in range(4)] + [h.fine.loss(m.x, batch)]
    assert all(b <= a for a, b in zip(losses, losses[1:]))
    assert losses[-1] < 0.5 * losses[0]


# --- work accounting -------------------------------------------------------------------------


@pytest.mark.parametrize("decomposition,expected", [("layers", 2 * 3 * 1.0), ("data", 2 * 3 * 0.5)])
def test_local_work_is_charged_per_evaluation(decomposition, expected):
    h, x0, batch = mlp_hierarchy(n=64)
    m = make(h, x0, decomposition=decomposition, subdomains=2, globalization="none", local_solver="sgd", local_steps=3)
    m.step(batch)
    assert h.counter.grad_evals == pytest.approx(expected)


# --- configuration and the runner --------------------------------------------------------------


def test_bad_hyper_parameters_are_rejected():
    with pytest.raises(ConfigError, match="variant"):
        RunConfig.from_dict({"problem": "mlp", "method": "schwarz", "method_params": {"variant": "hybrid"}})
    h, x0, _ = mlp_hierarchy()
    with pytest.raises(ConfigError, match="sequential"):
        make(h, x0, variant="multiplicative", parallel=True)
    with pytest.raises(ConfigError, match="overlap"):
        make(h, x0, decomposition="random", overlap=1)


def test_runs_on_mlp_through_the_runner():
    cfg = RunConfig.from_dict(
        {
            "problem": "mlp",
            "method": "schwarz",
            "seed": 0,
            "problem_params": {"n_train": 200, "n_test": 100, "width": 16},
            "method_params": {"subdomains": 3, "local_steps": 5},
            "budget": {"work_units": 40},
            "eval_interval": 10.0,
        }
    )
    result = run(cfg)
    s = result.summary.iloc[0]
    assert s["status"] == "budget_exhausted", s["error"]
    assert s["work_units"] >= 40
    hist = result.history
    assert hist["train_loss"].iloc[-1] < 0.8 * hist["train_loss"].iloc[0]
    assert math.isfinite(s["final_test_metric"])


@pytest.mark.parametrize("variant", ["additive", "multiplicative"])
def test_local_evals_counts_only_evaluations_made(variant):
    """A correction's ``local_evals`` is the number of local evaluations actually charged: the
    first local evaluation of a parameter subdomain at y0 is answered from the known f, ∇f at
    the iterate (no charge), so it is not counted either (it was, once per subdomain)."""
    h, x0, batch = mlp_hierarchy(seed=7)
    m = make(h, x0, variant=variant, subdomains=3, local_steps=3)
    f, g = h.fine.loss_grad(m.x, batch)
    before = h.counter.grad_evals
    corr = (m.core.additive if variant == "additive" else m.core.multiplicative)(m.x, batch, known=(f, g))
    charged = h.counter.grad_evals - before  # parameter subdomains: every local evaluation is a full one
    assert corr.local_evals == round(charged) and corr.local_evals > 0, (corr.local_evals, charged)


# --- stopping ----------------------------------------------------------------------------------


def test_apts_radius_collapse_is_a_stop_not_a_convergence():
    """A radius below radius_min far from a minimiser (here: started there) ends the run as
    'radius_collapse', never as converged (it was reported as converged before)."""
    h, x0, batch = mlp_hierarchy(seed=5)
    m = make(h, x0, subdomains=3, globalization="tr", local_solver="sgd", local_lr=0.1, radius=1e-12)
    r = m.step(batch)
    g = h.fine.loss_grad(m.x, batch)[1]
    assert float(g.abs().max()) > 1e-3  # far from a stationary point
    assert r.stop_reason == "radius_collapse" and not r.converged


def test_zero_correction_without_globalisation_is_a_stop_not_a_convergence():
    """Exact block solves reach the solution of a separable quadratic in one step (measured: the
    second correction is 2e-13, the third exactly zero): the run stops as 'zero_correction' (no
    global gradient is evaluated in this mode, so no convergence is claimed)."""
    sizes = (2, 3)
    A = torch.block_diag(spd_matrix(2, seed=3, cond=20.0), spd_matrix(3, seed=4, cond=20.0))
    b = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0], dtype=A.dtype)
    h, x0 = quadratic_hierarchy(A, b, sizes)
    m = make(h, x0, subdomains=2, **EXACT)
    results = [m.step(UnitBatch()) for _ in range(3)]
    assert not results[0].stops
    assert results[-1].stop_reason == "zero_correction" and not results[-1].converged


def test_local_solver_never_evaluates_the_previous_point_again():
    """torch's strong-Wolfe search asks again for the point it just evaluated when a trial step
    rounds away (found by the contract tests on a one-variable subdomain): the recorder answers it
    from memory, so the local evaluations count (and charge) only new points."""
    from ml2bench.dd.local import _Recorder

    calls = []

    def fun(y):
        calls.append(y.clone())
        return float((y**2).sum()), 2 * y

    rec = _Recorder(fun)
    y = torch.tensor([1.0, 2.0])
    first = rec(y)
    again = rec(y.clone())
    assert len(calls) == 1 and rec.evals == 1 and again[0] == first[0] and torch.equal(again[1], first[1])
    rec(y + 1)
    assert len(calls) == 2 and rec.value_at(y, need=True) == first[0] and len(calls) == 2
