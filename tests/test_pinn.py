"""The PINN problems (pinn_poisson, pinn_burgers, pinn_allen_cahn, pinn_allen_cahn_dirichlet,
pinn_klein_gordon): data, residuals (checked on exact/manufactured solutions), the hard-constraint
lifting, metric definition, batching, sampling, domains, determinism, levels and training through the
runner. Sizes are tiny so the file runs in seconds."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from ml2bench.core.config import RunConfig
from ml2bench.core.objective import Objective, WorkCounter
from ml2bench.core.params import ConfigError
from ml2bench.core.runner import run
from ml2bench.problems import PROBLEMS
from ml2bench.problems.pinn.base import PINNBatch, PINNNet, PINNProblem
from ml2bench.problems.pinn.klein_gordon import PinnKleinGordon
from ml2bench.problems.pinn.poisson import PinnPoisson
from ml2bench.problems.pinn.reference import allen_cahn, allen_cahn_dirichlet, burgers, klein_gordon, poisson

NAMES = ("pinn_poisson", "pinn_burgers", "pinn_allen_cahn", "pinn_allen_cahn_dirichlet", "pinn_klein_gordon")
NET = {"width": 8, "depth": 4}
SMALL = {
    "pinn_poisson": {**NET, "n_interior": 96, "n_boundary": 40, "n_test": 21},
    "pinn_burgers": {**NET, "n_interior": 96, "n_initial": 30, "n_boundary": 20, "n_test_x": 33, "n_test_t": 11},
    "pinn_allen_cahn": {**NET, "n_interior": 96, "n_initial": 30, "n_test_x": 64, "n_test_t": 11},
    "pinn_allen_cahn_dirichlet": {
        **NET,
        "n_interior": 96,
        "n_initial": 30,
        "n_boundary": 20,
        "n_test_x": 33,
        "n_test_t": 11,
    },
    "pinn_klein_gordon": {**NET, "n_interior": 96, "n_initial": 30, "n_boundary": 20, "n_test": 21},
}


def make(name: str, seed: int = 0, dtype: torch.dtype = torch.float32, **hp) -> PINNProblem:
    return PROBLEMS.get(name)({**SMALL[name], **hp}, seed=seed, device=torch.device("cpu"), dtype=dtype)


class Exact(nn.Module):
    """A "network" that returns a closed-form u(x, t) (shape (n, 1)), differentiable by autograd."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, p: Tensor) -> Tensor:
        return self.fn(p[:, 0], p[:, 1]).reshape(-1, 1)


def zero(p: Tensor) -> Tensor:
    return torch.zeros(p.shape[0], 1, dtype=p.dtype)


# ----------------------------------------------------------------------------- construction
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_construction_shapes_and_dtype(name, dtype):
    p = make(name, dtype=dtype)
    assert p.n_train == SMALL[name]["n_interior"] == p.interior.shape[0]
    assert p.interior.shape == (p.n_train, 2) and p.interior.dtype == dtype
    assert p.forcing.shape == (p.n_train,) and p.forcing.dtype == dtype
    assert set(p.conditions) == set(p.condition_weights)
    for ps in p.conditions.values():
        assert ps.x.shape == (len(ps), 2) and ps.target.shape == (len(ps),) and ps.x.dtype == dtype
    (x0, x1), (t0, t1) = p.domain
    for pts in [p.interior] + [ps.x for ps in p.conditions.values()]:
        assert (pts[:, 0] >= x0).all() and (pts[:, 0] <= x1).all()
        assert (pts[:, 1] >= t0).all() and (pts[:, 1] <= t1).all()
    assert p.metric_name == "rel_l2" and p.metric_higher_is_better is False
    assert p.default_batch_size is None
    model = p.build_model().to(dtype)
    assert model(p.interior).shape == (p.n_train, 1)
    value = p.loss(
        Objective(model, p.loss, WorkCounter(), p.n_train).fmodel(
            torch.cat([q.detach().reshape(-1) for q in model.parameters()])
        ),
        p.full_batch(),
    )
    assert value.dtype == dtype and value.ndim == 0 and math.isfinite(float(value.detach()))


def test_condition_sets_lie_on_the_boundary():
    p = make("pinn_poisson", n_boundary=41)
    b = p.conditions["boundary"].x.double()
    on_side = (b[:, 0] == 0) | (b[:, 0] == 1) | (b[:, 1] == 0) | (b[:, 1] == 1)
    assert len(b) == 41 and on_side.all()
    counts = [int((b[:, 0] == 0).sum()), int((b[:, 0] == 1).sum())]
    assert counts == [11, 10]  # 41 points over 4 sides: 11, 10, 10, 10
    for name in ("pinn_burgers", "pinn_klein_gordon"):
        q = make(name)
        assert (q.conditions["initial"].x[:, 1] == 0).all()
        xb = q.conditions["boundary"].x[:, 0]
        lo, hi = q.domain[0]
        assert int((xb == lo).sum()) == int((xb == hi).sum()) == 10
    np.testing.assert_allclose(
        q.conditions["boundary"].target.numpy(),
        klein_gordon.exact(*q.conditions["boundary"].x.double().T).numpy(),
        atol=1e-6,
    )


# ----------------------------------------------------------------------------- residuals
def test_poisson_residual_of_exact_solution_vanishes():
    p = make("pinn_poisson", dtype=torch.float64)
    r = p.residual(Exact(poisson.exact), p.full_batch())
    assert r.abs().max() < 1e-10 * 2 * math.pi**2
    # ... and the sign of the forcing matters: u = -exact leaves 2 * f
    r_neg = p.residual(Exact(lambda x, y: -poisson.exact(x, y)), p.full_batch())
    torch.testing.assert_close(r_neg, -2 * p.forcing)
    assert float(p.loss(Exact(poisson.exact), p.full_batch()).detach()) < 1e-20


def test_poisson_loss_charges_a_boundary_offset_by_its_weight():
    """u = exact + c satisfies the PDE (Δc = 0) and misses the boundary data by c everywhere, so
    the loss is exactly w_boundary · c² (the boundary term is part of the loss, with its weight)."""
    for w in (1.0, 2.5):
        p = make("pinn_poisson", dtype=torch.float64, w_boundary=w)
        loss = float(p.loss(Exact(lambda x, y: poisson.exact(x, y) + 0.3), p.full_batch()).detach())
        assert loss == pytest.approx(w * 0.09, rel=1e-10)


EXPECTED_TERMS = {
    "pinn_poisson": {"pde", "boundary"},
    "pinn_burgers": {"pde", "initial", "boundary"},
    "pinn_allen_cahn": {"pde", "initial"},
    "pinn_allen_cahn_dirichlet": {"pde", "initial", "boundary"},
    "pinn_klein_gordon": {"pde", "initial", "initial_t", "boundary"},
}


@pytest.mark.parametrize("name", NAMES)
def test_loss_is_pde_plus_weighted_condition_terms(name):
    """loss = mean r_pde² + Σ_k w_k · mean r_k² over every boundary/initial term, with each weight
    set to a distinct value, for an untrained network (all terms non-zero)."""
    weights = {key: 1.5 + i for i, key in enumerate(sorted(set(PROBLEMS.get(name).condition_weights.values())))}
    p = make(name, dtype=torch.float64, **weights)
    torch.manual_seed(0)
    net = PINNNet(p.domain, width=4, depth=2).double()
    batch = p.full_batch()
    terms = {k: float(v.detach()) for k, v in p.loss_terms(net, batch).items()}
    assert set(terms) == EXPECTED_TERMS[name] and all(v > 0 for v in terms.values()), terms
    expected = terms["pde"] + sum(weights[p.condition_weights[k]] * v for k, v in terms.items() if k != "pde")
    assert float(p.loss(net, batch).detach()) == pytest.approx(expected, rel=1e-12)


def test_klein_gordon_residual_and_conditions_of_exact_solution_vanish():
    p = make("pinn_klein_gordon", dtype=torch.float64)
    batch = p.full_batch()
    terms = p.loss_terms(Exact(klein_gordon.exact), batch)
    assert set(terms) == {"pde", "initial", "initial_t", "boundary"}
    assert all(float(v.detach()) < 1e-20 for v in terms.values()), terms
    # the u_t condition really differentiates: u = x + t violates it by exactly 1
    res = p.condition_residual(Exact(lambda x, t: x + t), "initial_t", batch.conditions["initial_t"])
    torch.testing.assert_close(res, torch.ones_like(res))


def test_burgers_and_allen_cahn_residuals_on_manufactured_functions():
    """u = t² sin(3x) + x: the residual must match the hand-computed operator."""

    def u(x, t):
        return t**2 * torch.sin(3 * x) + x

    for name in ("pinn_burgers", "pinn_allen_cahn"):
        p = make(name, dtype=torch.float64)
        x, t = p.interior[:, 0], p.interior[:, 1]
        uu = u(x, t)
        u_t, u_x, u_xx = 2 * t * torch.sin(3 * x), 3 * t**2 * torch.cos(3 * x) + 1, -9 * t**2 * torch.sin(3 * x)
        if name == "pinn_burgers":
            expected = u_t + uu * u_x - (0.01 / math.pi) * u_xx
        else:
            expected = u_t - 1e-4 * u_xx + 5 * uu**3 - 5 * uu
        torch.testing.assert_close(p.residual(Exact(u), p.full_batch()), expected, rtol=1e-12, atol=1e-12)


def test_burgers_initial_and_boundary_data():
    p = make("pinn_burgers", dtype=torch.float64)
    init = p.conditions["initial"]
    torch.testing.assert_close(init.target, -torch.sin(math.pi * init.x[:, 0]))
    assert (p.conditions["boundary"].target == 0).all()
    # the Cole–Hopf solution satisfies the data: both condition terms vanish
    ref = Exact(lambda x, t: torch.from_numpy(burgers.reference(x.numpy(), t.numpy())))
    with torch.no_grad():
        for name, ps in p.conditions.items():
            assert p.condition_residual(ref, name, ps).abs().max() < 1e-12


def test_allen_cahn_network_is_periodic_in_x():
    p = make("pinn_allen_cahn", dtype=torch.float64)
    torch.manual_seed(0)
    model = p.build_model().double()
    assert model.opening.in_features == 3 and "initial" in p.conditions and len(p.conditions) == 1
    t = torch.linspace(0, 1, 7, dtype=torch.float64)
    left = torch.stack([-torch.ones_like(t), t], 1).requires_grad_(True)
    right = torch.stack([torch.ones_like(t), t], 1).requires_grad_(True)
    ul, ur = model(left), model(right)
    torch.testing.assert_close(ul, ur)
    gl = torch.autograd.grad(ul.sum(), left)[0]
    gr = torch.autograd.grad(ur.sum(), right)[0]
    torch.testing.assert_close(gl, gr)


# ----------------------------------------------------------------------------- hard constraints
def random_net(p: PINNProblem, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return p.build_model().double()


def assert_lift_satisfies_data(hard: PINNProblem, seeds=(0, 1, 2)) -> None:
    """Every boundary/initial condition of the soft formulation (the same points and data, Klein–Gordon's
    u_t included) holds for the lifted random networks to round-off, and fails for the raw network."""
    conditions = hard.sample_conditions(torch.Generator().manual_seed(7))
    assert set(conditions) == set(hard.condition_weights)
    for seed in seeds:
        net = random_net(hard, seed)
        for name, ps in conditions.items():
            lifted = hard.condition_residual(hard.solution(net), name, ps).detach()
            raw = hard.condition_residual(lambda q: net(q).reshape(-1), name, ps).detach()
            scale = 1.0 + float(ps.target.abs().max())
            assert lifted.abs().max() < 1e-13 * scale, (name, seed, float(lifted.abs().max()))
            assert raw.abs().max() > 1e-3, (name, seed)  # not vacuous: the network alone misses the data


@pytest.mark.parametrize("name", NAMES)
def test_lifted_network_satisfies_the_data_to_round_off(name):
    hard = make(name, dtype=torch.float64, constraints="hard")
    assert_lift_satisfies_data(hard)
    # the loss is the PDE residual alone: no condition points, no condition terms
    net = random_net(hard, 0)
    batch = hard.full_batch()
    assert hard.conditions == {} and batch.conditions == {}
    terms = hard.loss_terms(net, batch)
    assert set(terms) == {"pde"} and float(hard.loss(net, batch).detach()) == float(terms["pde"].detach()) > 0
    # ... on the same interior points as the soft formulation
    torch.testing.assert_close(hard.interior, make(name, dtype=torch.float64).interior, rtol=0, atol=0)
    # the network matters inside the domain: ℓ > 0 there, and two networks give two solutions
    _, ell = hard.lifting(hard.interior)
    assert (ell > 0).all() and float(ell.max()) <= 1.0
    u0, u1 = (hard.solution(random_net(hard, k))(hard.interior) for k in (0, 1))
    assert (u0 - u1).abs().max() > 1e-3


def test_lifting_is_the_authors_apply_bc_on_their_domain():
    """On [-1, 1] × [0, 1] the Burgers and Allen–Cahn (Dirichlet) liftings are the SPQN authors'
    apply_bc: u = u0(x) + (x + 1)(1 - x) t · NN."""
    for name, u0 in (("pinn_burgers", burgers.initial), ("pinn_allen_cahn_dirichlet", allen_cahn.initial)):
        p = make(name, dtype=torch.float64, constraints="hard")
        x, t = p.interior[:, 0], p.interior[:, 1]
        g, ell = p.lifting(p.interior)
        torch.testing.assert_close(g, u0(x), rtol=0, atol=0)
        torch.testing.assert_close(ell, (x + 1) * (1 - x) * t, rtol=1e-14, atol=1e-15)
    assert (
        allen_cahn.initial(torch.tensor([-1.0, 1.0], dtype=torch.float64)).tolist()
        == [allen_cahn_dirichlet.BOUNDARY] * 2
    )


def test_hard_periodic_allen_cahn_stays_periodic_in_value():
    p = make("pinn_allen_cahn", dtype=torch.float64, constraints="hard")
    t = torch.linspace(0, 1, 9, dtype=torch.float64)
    u = p.solution(random_net(p, 0))
    torch.testing.assert_close(u(torch.stack([-torch.ones_like(t), t], 1)), u(torch.stack([torch.ones_like(t), t], 1)))


# ----------------------------------------------------------------------------- domains, sampling
class ShiftedPoisson(PinnPoisson):
    """sin(πx) sin(πy) vanishes on the boundary of this box too, so the exact solution stays exact."""

    domain = ((-1.0, 1.0), (1.0, 3.0))


class ShiftedKleinGordon(PinnKleinGordon):
    """The manufactured solution on another box: the data (from the exact solution) move with it."""

    domain = ((-0.5, 1.0), (0.25, 0.75))


def _shifted(cls, dtype=torch.float64, **hp):
    small = SMALL["pinn_poisson" if cls is ShiftedPoisson else "pinn_klein_gordon"]
    return cls({**small, **hp}, seed=0, device=torch.device("cpu"), dtype=dtype)


def _on_side(points: Tensor, box) -> Tensor:
    (x0, x1), (t0, t1) = box
    return (points[:, 0] == x0) | (points[:, 0] == x1) | (points[:, 1] == t0) | (points[:, 1] == t1)


@pytest.mark.parametrize("cls", [ShiftedPoisson, ShiftedKleinGordon])
@pytest.mark.parametrize("sampling", ["uniform", "sobol", "grid"])
def test_a_problem_on_another_domain_samples_and_evaluates_there(cls, sampling):
    p = _shifted(cls, sampling=sampling, n_interior=100)
    (x0, x1), (t0, t1) = box = p.domain
    inside = [p.interior] + [ps.x for ps in p.conditions.values()]
    for pts in inside:
        assert ((pts[:, 0] >= x0) & (pts[:, 0] <= x1) & (pts[:, 1] >= t0) & (pts[:, 1] <= t1)).all()
    # spread over the whole box, not over a corner of it
    assert p.interior[:, 0].max() - p.interior[:, 0].min() > 0.8 * (x1 - x0)
    assert p.interior[:, 1].max() - p.interior[:, 1].min() > 0.8 * (t1 - t0)
    for ps in p.conditions.values():
        assert _on_side(ps.x, box).all()
    pts, _ = p.test_data()
    assert pts.min(0).values.tolist() == [x0, t0] and pts.max(0).values.tolist() == [x1, t1]
    exact = poisson.exact if cls is ShiftedPoisson else klein_gordon.exact
    # the exact solution solves the problem as posed on this box: zero loss, zero test error
    assert float(p.loss(Exact(exact), p.full_batch()).detach()) < 1e-20
    assert p.evaluate(Exact(exact))["test_metric"] < 1e-14
    assert_lift_satisfies_data(_shifted(cls, sampling=sampling, n_interior=100, constraints="hard"), seeds=(0,))


def test_grid_sampling_is_the_midpoint_grid():
    p = make("pinn_burgers", dtype=torch.float64, sampling="grid", n_interior=100, n_initial=10, n_boundary=20)
    cells = (torch.arange(10, dtype=torch.float64) + 0.5) / 10
    xs, ts = -1 + 2 * cells, cells
    assert p.n_train == 100
    assert sorted(map(tuple, p.interior.tolist())) == sorted((float(a), float(b)) for a in xs for b in ts)
    init, bnd = p.conditions["initial"].x, p.conditions["boundary"].x
    torch.testing.assert_close(init, torch.stack([xs, torch.zeros(10, dtype=torch.float64)], 1), rtol=0, atol=0)
    assert sorted(bnd[:10, 1].tolist()) == sorted(bnd[10:, 1].tolist()) == ts.tolist()
    assert (bnd[:10, 0] == -1).all() and (bnd[10:, 0] == 1).all()
    # the same points for every seed (a grid has no randomness)
    assert torch.equal(
        p.interior, make("pinn_burgers", seed=3, dtype=torch.float64, sampling="grid", n_interior=100).interior
    )
    with pytest.raises(ConfigError, match="n_interior.*99"):
        make("pinn_burgers", sampling="grid", n_interior=99)


# ----------------------------------------------------------------------------- metric
@pytest.mark.parametrize("name", NAMES)
def test_zero_network_has_relative_error_exactly_one(name):
    p = make(name)
    out = p.evaluate(zero)
    assert out["test_metric"] == 1.0
    _, ref = p.test_data()
    assert out["test_loss"] == pytest.approx(float(ref.square().mean()), rel=1e-12)


def test_exact_network_has_zero_error_closed_forms():
    for name, fn in (("pinn_poisson", poisson.exact), ("pinn_klein_gordon", klein_gordon.exact)):
        for dtype, tol in ((torch.float32, 1e-6), (torch.float64, 1e-14)):
            out = make(name, dtype=dtype).evaluate(Exact(fn))
            assert out["test_metric"] < tol and out["test_loss"] < tol**2


def test_exact_network_has_zero_error_burgers():
    p = make("pinn_burgers", dtype=torch.float64)
    ref = Exact(lambda x, t: torch.from_numpy(burgers.reference(x.numpy(), t.numpy())))
    out = p.evaluate(ref)
    assert out["test_metric"] < 1e-13
    pts, values = p.test_data()
    assert pts.shape == (33 * 11, 2) and values.shape == (33 * 11,)


def test_exact_network_has_zero_error_allen_cahn():
    """An independent solve (n_x = 1024 instead of 2048; exact u0 at t = 0) agrees to ~1e-6."""
    p = make("pinn_allen_cahn", dtype=torch.float64)
    t = np.linspace(0, 1, 11)
    xs, _, U = allen_cahn.solve(1024, t_eval=t)
    U[0] = allen_cahn.initial(xs)

    def lookup(q: Tensor) -> Tensor:
        j = torch.round((q[:, 0] + 1) / 2 * 1024).long() % 1024
        k = torch.round(q[:, 1] * 10).long()
        return torch.from_numpy(U)[k, j].reshape(-1, 1)

    out = p.evaluate(lookup)
    assert out["test_metric"] < 1e-6
    pts, _ = p.test_data()
    assert pts.shape == (64 * 11, 2) and p.test_data()[0] is pts  # built once


# ----------------------------------------------------------------------------- batching, seeds
@pytest.mark.parametrize("name", ["pinn_poisson", "pinn_klein_gordon"])
def test_minibatches_cover_every_point_once_per_epoch(name):
    p = make(name, dtype=torch.float64)
    gen = torch.Generator().manual_seed(3)
    batches = list(p.train_batches(25, gen))
    assert len(batches) == math.ceil(96 / 25)
    assert all(isinstance(b, PINNBatch) for b in batches)
    assert [b.size for b in batches] == [25, 25, 25, 21]
    assert [b.interior.shape[0] for b in batches] == [b.size for b in batches]

    def rows(t: Tensor) -> list[tuple[float, ...]]:
        return sorted(map(tuple, t.tolist()))

    assert rows(torch.cat([b.interior for b in batches])) == rows(p.interior)
    # forcing travels with its points
    for b in batches:
        torch.testing.assert_close(b.forcing, p.forcing_at(b.interior))
    for cname, ps in p.conditions.items():  # proportional shares, each point once
        parts = [b.conditions[cname] for b in batches]
        assert rows(torch.cat([q.x for q in parts])) == rows(ps.x)
        assert max(len(q) for q in parts) - min(len(q) for q in parts) <= 1
        assert rows(torch.cat([torch.cat([q.x, q.target[:, None]], 1) for q in parts])) == rows(
            torch.cat([ps.x, ps.target[:, None]], 1)
        )
    # full batch by default; tiny condition sets still give every batch a point
    (full,) = p.train_batches(None, gen)
    assert full.size == p.n_train
    few = make(name, n_boundary=4)
    assert all(len(b.conditions["boundary"]) == 1 for b in few.train_batches(10, gen))


@pytest.mark.parametrize("sampling", ["uniform", "sobol"])
def test_collocation_points_are_deterministic_in_the_seed(sampling):
    a = make("pinn_burgers", seed=5, sampling=sampling)
    b = make("pinn_burgers", seed=5, sampling=sampling)
    c = make("pinn_burgers", seed=6, sampling=sampling)
    d = make("pinn_burgers", seed=5, sampling=sampling, dtype=torch.float64)
    assert torch.equal(a.interior, b.interior) and not torch.equal(a.interior, c.interior)
    for k in a.conditions:
        assert torch.equal(a.conditions[k].x, b.conditions[k].x)
    torch.testing.assert_close(a.interior, d.interior.float(), rtol=0, atol=0)  # same points, cast


# ----------------------------------------------------------------------------- levels, config
@pytest.mark.parametrize("name", NAMES)
def test_hierarchy_builds_with_transfers(name):
    p = make(name, depth=4, interpolation="linear")
    assert p.max_levels() == 3
    assert [p.build_model(level).depth for level in range(3)] == [4, 2, 1]
    assert all(p.build_model(level).T == 1.0 for level in range(3))
    torch.manual_seed(0)
    h = p.hierarchy(3, WorkCounter())
    ratios = [o.cost_ratio for o in h.objectives]
    assert ratios[0] == 1.0 and ratios[0] > ratios[1] > ratios[2] > 0
    batch = p.full_batch()
    x = h.fine.initial_x()
    for level, tr in enumerate(h.transfers):
        y = tr.restrict(x)
        torch.testing.assert_close(tr.restrict(tr.prolongate(y)), y)
        value, grad = h.objectives[level + 1].loss_grad(y, batch)
        assert math.isfinite(value) and grad.shape == y.shape
        x = y
    with pytest.raises(ConfigError, match="levels"):
        p.hierarchy(4, WorkCounter())
    with pytest.raises(ConfigError):
        p.build_model(3)
    assert make(name, depth=3).max_levels() == 1


@pytest.mark.parametrize(
    "bad, key",
    [
        ({"n_interiour": 10}, "n_interiour"),
        ({"activation": "relu"}, "activation"),
        ({"width": 0}, "width"),
        ({"interpolation": "cubic"}, "interpolation"),
        ({"sampling": "latin"}, "sampling"),
        ({"constraints": "exact"}, "constraints"),
        ({"adaptive_slope": -1.0}, "adaptive_slope"),
    ],
)
def test_bad_hyper_parameters_name_the_key(bad, key):
    raw = {"problem": "pinn_burgers", "method": "adam", "problem_params": bad}
    with pytest.raises(ConfigError, match=key):
        RunConfig.from_dict(raw)
    with pytest.raises(ConfigError, match=key):
        PROBLEMS.get("pinn_burgers")(bad, seed=0, device=torch.device("cpu"), dtype=torch.float32)


def test_allen_cahn_rejects_odd_test_grid():
    with pytest.raises(ConfigError, match="n_test_x"):
        make("pinn_allen_cahn", n_test_x=65)


# ----------------------------------------------------------------------------- training
# (lr, iterations, bound on final/initial train loss, bound on the final relative L2 error).
# Measured (seed 1, float32, SMALL sizes, `tests/test_pinn.py` settings): train loss initial → final,
# rel. L2 initial → final:
#   poisson   lr 1e-2, 100 it: 89.65 → 0.238, 1.451 → 0.441
#   burgers   lr 3e-3, 200 it: 1.139 → 0.344, 1.282 → 0.786
#   allen_cahn lr 1e-2, 15 it: 24.46 → 5.00,  1.204 → 0.844 (more iterations: 0.95 at 100)
#   allen_cahn_dirichlet lr 1e-2, 100 it: 1.893 → 0.876, 1.012 → 0.898 (200 it: loss 0.081, rel. L2 0.988)
#   klein_gordon lr 1e-2, 100 it: 11017 → 5762, 1.237 → 6.54 (the loss falls, the error grows:
#   not learned at this size; lr 3e-2 / width 16 / 500 it: loss 24, rel. L2 6.9)
# The zero predictor has rel. L2 exactly 1 (test above), so "< 1" is the floor for "learned".
ADAM_LEARNS = {
    "pinn_poisson": (1e-2, 100, 0.01, 0.6),
    "pinn_burgers": (3e-3, 200, 0.5, 0.9),
    "pinn_allen_cahn": (1e-2, 15, 0.3, 0.92),
    "pinn_allen_cahn_dirichlet": (1e-2, 100, 0.6, 0.95),
    "pinn_klein_gordon": (1e-2, 100, 0.7, None),
}


def _adam_run(name: str, **hp):
    lr, iterations, _, _ = ADAM_LEARNS[name]
    cfg = RunConfig.from_dict(
        {
            "problem": name,
            "method": "adam",
            "seed": 1,
            "problem_params": {**SMALL[name], **hp},
            "threads": 1,
            "method_params": {"lr": lr},
            "budget": {"iterations": iterations},
            "eval_interval": 1000,
        }
    )
    threads = torch.get_num_threads()
    try:
        return run(cfg)
    finally:
        torch.set_num_threads(threads)  # the runner sets it process-wide


@pytest.mark.parametrize("name", NAMES)
def test_adam_learns_through_the_runner(name):
    """Adam through the runner lowers the loss by a measured factor and, where the problem is
    learned at this size, ends with a relative L2 error below the zero predictor's 1."""
    _, iterations, loss_ratio, l2_bound = ADAM_LEARNS[name]
    result = _adam_run(name)
    h, s = result.history, result.summary
    assert result.status == "budget_exhausted", s["error"].iloc[0]
    assert len(h) == 2 and h["epoch"].iloc[-1] == pytest.approx(float(iterations))  # full batch: 1 step = 1 epoch
    assert s["metric_name"].iloc[0] == "rel_l2"
    loss = h["train_loss"].to_numpy()
    assert np.isfinite(loss).all() and loss[-1] < loss_ratio * loss[0], loss
    if l2_bound is not None:
        assert h["test_metric"].iloc[0] > 1.0  # the initial network is no better than zero
        assert h["test_metric"].iloc[-1] < l2_bound, h["test_metric"].tolist()


def test_adam_learns_hard_constrained_burgers_through_the_runner():
    """With the lifting the loss is the PDE residual alone; measured (seed 1, SMALL, lr 3e-3, 200 it):
    train loss 1.238 → 0.369, rel. L2 0.567 → 0.474 (below 1 from the start: g = u0 already
    carries the initial data)."""
    result = _adam_run("pinn_burgers", constraints="hard")
    h = result.history
    assert result.status == "budget_exhausted", result.summary["error"].iloc[0]
    assert h["train_loss"].iloc[-1] < 0.5 * h["train_loss"].iloc[0]
    assert h["test_metric"].iloc[-1] < h["test_metric"].iloc[0] < 1.0


@pytest.mark.xfail(
    strict=True,
    reason="Klein-Gordon is not learned at this size: the loss falls, the "
    "rel. L2 error grows to ~6.5 (measured); strict, so learning it turns this into a pass to act on",
)
def test_adam_learns_klein_gordon_solution():
    assert _adam_run("pinn_klein_gordon").history["test_metric"].iloc[-1] < 1.0


def test_lbfgs_float64_decreases_poisson_loss():
    cfg = RunConfig.from_dict(
        {
            "problem": "pinn_poisson",
            "method": "lbfgs",
            "dtype": "float64",
            "problem_params": SMALL["pinn_poisson"],
            "budget": {"iterations": 5},
            "eval_interval": 1000,
        }
    )
    result = run(cfg)
    h = result.history
    assert result.status in ("budget_exhausted", "ok"), result.summary["error"].iloc[0]
    assert h["train_loss"].iloc[-1] < 0.5 * h["train_loss"].iloc[0]


def test_minibatch_adam_run_counts_epochs():
    cfg = RunConfig.from_dict(
        {
            "problem": "pinn_klein_gordon",
            "method": "adam",
            "batch_size": 32,
            "problem_params": SMALL["pinn_klein_gordon"],
            "budget": {"epochs": 2},
            "eval_interval": 100,
        }
    )
    result = run(cfg)
    assert result.status == "budget_exhausted", result.summary["error"].iloc[0]
    assert result.summary["iterations"].iloc[0] == 2 * 3
    assert result.history["grad_evals"].iloc[-1] == pytest.approx(2.0)


def test_pinn_net_normalises_inputs():
    net = PINNNet(((0.0, 1.0), (-1.0, 3.0)), width=4, depth=2)
    z = net.features(torch.tensor([[0.0, -1.0], [1.0, 3.0], [0.5, 1.0]]))
    torch.testing.assert_close(z, torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]))
    assert sum(1 for _ in net.buffers()) == 0  # the map adds nothing the transfers would see


def test_adaptive_activation_starts_as_the_fixed_network_and_scales_the_slope_gradient():
    """adaptive_slope = n: one slope a_k = 1/n per residual block, so the initial network is the fixed-σ
    one (same weights, same outputs), and ∂L/∂a_k = n · ∂L/∂(n a_k), the factor that speeds up learning
    steep slopes (Jagtap et al. 2020)."""
    p = torch.rand(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    torch.manual_seed(0)
    fixed = PINNNet(((-1.0, 1.0), (0.0, 1.0)), width=6, depth=4).double()
    torch.manual_seed(0)
    adaptive = PINNNet(((-1.0, 1.0), (0.0, 1.0)), width=6, depth=4, adaptive_slope=10.0).double()
    slopes = [m.slope for m in adaptive.modules() if hasattr(m, "slope")]
    assert len(slopes) == 4 and all(float(a) == pytest.approx(0.1, rel=1e-7) for a in slopes)  # 1/n, cast
    with torch.no_grad():
        for a in slopes:
            a.fill_(0.1)  # 1/n in float64, so that n·a = 1 exactly
    assert sum(t.numel() for t in adaptive.parameters()) == sum(t.numel() for t in fixed.parameters()) + 4
    torch.testing.assert_close(adaptive(p), fixed(p), rtol=0, atol=1e-15)

    (g_a,) = torch.autograd.grad(adaptive(p).square().sum(), slopes[1])
    unit = PINNNet(((-1.0, 1.0), (0.0, 1.0)), width=6, depth=4, adaptive_slope=1.0).double()
    unit.load_state_dict(adaptive.state_dict())  # same weights ...
    unit_slopes = [m.slope for m in unit.modules() if hasattr(m, "slope")]
    with torch.no_grad():
        for a in unit_slopes:
            a.fill_(1.0)  # ... and the same effective slope n·a = 1, now with scale 1
    torch.testing.assert_close(unit(p), adaptive(p), rtol=0, atol=1e-15)
    (g_eff,) = torch.autograd.grad(unit(p).square().sum(), unit_slopes[1])
    assert float(g_eff.abs()) > 1e-3
    torch.testing.assert_close(g_a, 10.0 * g_eff, rtol=1e-12, atol=0)


def test_pinn_claims_are_on_hard_constrained_pinns_with_budgets_by_their_rule():
    """Every problem of a PINN (SPQN) claim in claims.yaml is in the papers' formulation and has its work
    budget from the stated rule: factor x the largest work to the target any of the claim's methods needed
    on the calibration seed (so that no pair is censored on both sides there), rounded up to ``step``."""
    import yaml

    config = yaml.safe_load((Path(__file__).parents[1] / "workflow/config/claims.yaml").read_text())
    rule, calibration = config["_pinn_budget_rule"], config["_pinn_calibration"]
    assert rule["seed"] not in config["seeds"]  # calibration on a seed the verdicts do not use
    entries = {e["id"]: e for e in config["sweeps"]}
    spqn = [c for c in config["claims"] if c["id"].startswith("spqn")]
    assert {c["metric"] for c in spqn} >= {"work_units_to_target", "work_units_parallel_to_target"}
    for claim in spqn:
        assert claim["method"] == "schwarz"
        for pid in claim["problems"]:
            entry = entries[pid]
            assert issubclass(PROBLEMS.get(entry["problem"]), PINNProblem)
            assert entry["params"]["constraints"] == "hard" and entry["run"]["dtype"] == "float64"
            needed = calibration[pid]
            assert {claim["method"], *claim["baselines"]} <= set(needed)
            budget = math.ceil(rule["factor"] * max(needed.values()) / rule["step"]) * rule["step"]
            assert entry["budget"] == {"work_units": budget}, pid
