"""Trust-region building blocks: Steihaug–Toint CG, ρ-rules, monotonicity, quasi-Newton secant
equations; and the registered ``tr`` method on Rosenbrock."""

import math
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from ml2bench.core.objective import Objective, WorkCounter
from ml2bench.core.params import ConfigError
from ml2bench.methods import METHODS
from ml2bench.numerics.quasi_newton import LBFGS, LSR1, make_qn
from ml2bench.numerics.trust_region import TRConfig, steihaug_cg, tr_iteration

D = torch.float64


class Quadratic:
    """f(x) = ½ xᵀAx (counted like an objective: number of evaluations)."""

    def __init__(self, A):
        self.A, self.evals = A, 0

    def loss_grad(self, x, batch):
        self.evals += 1
        return float(0.5 * x @ self.A @ x), self.A @ x


class Dense:
    def __init__(self, B):
        self.B = B

    def matvec(self, v):
        return self.B @ v

    def update(self, s, y):
        return False


def test_steihaug_boundary_negative_curvature_and_interior():
    g = torch.tensor([1.0, 0.1], dtype=D)
    B = torch.diag(torch.tensor([1.0, -1.0], dtype=D))
    res = steihaug_cg(g, lambda v: B @ v, radius=2.0)
    assert res.status == "negative_curvature"
    assert abs(float(res.s.norm()) - 2.0) < 1e-12 and res.pred > 0
    # indefinite along the first CG direction itself
    res = steihaug_cg(torch.tensor([0.0, 1.0], dtype=D), lambda v: B @ v, radius=0.5)
    assert res.status == "negative_curvature" and abs(float(res.s.norm()) - 0.5) < 1e-12
    A = torch.diag(torch.tensor([1.0, 10.0], dtype=D))
    res = steihaug_cg(g, lambda v: A @ v, radius=0.1)
    assert res.status == "boundary" and abs(float(res.s.norm()) - 0.1) < 1e-12
    res = steihaug_cg(g, lambda v: A @ v, radius=100.0, rtol=1e-12)
    assert res.status == "converged"
    assert torch.allclose(res.s, -torch.linalg.solve(A, g), atol=1e-10)
    assert abs(res.pred - 0.5 * float(g @ torch.linalg.solve(A, g))) < 1e-10


def test_steihaug_predicted_decrease_by_recurrence_needs_no_extra_product():
    torch.manual_seed(1)
    Q = torch.randn(8, 8, dtype=D)
    A = Q @ Q.T + torch.diag(torch.linspace(-2.0, 1.0, 8, dtype=D))
    g = torch.randn(8, dtype=D)
    for radius, iters in ((0.05, 50), (100.0, 50), (100.0, 2)):  # boundary / negative curvature or interior / capped
        calls = []

        def mv(v):
            calls.append(1)
            return A @ v

        direct = steihaug_cg(g, mv, radius, max_iter=iters)
        n_direct = len(calls)
        calls.clear()
        rec = steihaug_cg(g, mv, radius, max_iter=iters, pred_by_recurrence=True)
        assert torch.equal(rec.s, direct.s) and rec.status == direct.status
        assert abs(rec.pred - direct.pred) <= 1e-12 * abs(direct.pred)
        assert len(calls) == n_direct - 1 == rec.iterations


def test_rejected_step_shrinks_radius_and_keeps_iterate():
    f = Quadratic(torch.diag(torch.tensor([100.0, 1.0], dtype=D)))
    x = torch.tensor([1.0, 1.0], dtype=D)
    fx, gx = f.loss_grad(x, None)
    cfg = TRConfig()
    res = tr_iteration(f, None, x, fx, gx, 10.0, Dense(torch.eye(2, dtype=D)), cfg)  # model curvature 1 ≪ 100
    assert not res.accepted and res.rho < cfg.eta0
    assert torch.equal(res.x, x) and res.f == fx
    assert res.radius < 10.0 and res.radius <= cfg.gamma1 * res.step_norm + 1e-15


def test_very_successful_boundary_step_grows_radius():
    A = torch.eye(2, dtype=D)
    f = Quadratic(A)
    x = torch.tensor([3.0, 4.0], dtype=D)
    fx, gx = f.loss_grad(x, None)
    cfg = TRConfig()
    res = tr_iteration(f, None, x, fx, gx, 0.1, Dense(A), cfg)
    assert res.accepted and res.rho > cfg.eta2 and res.cg_status == "boundary"
    assert abs(res.radius - cfg.gamma2 * 0.1) < 1e-12
    assert res.f < fx
    # a middling ρ keeps the radius: model curvature 1, true curvature 1.6 → ρ = 1 − 0.6·t/(2 − t) on the boundary
    f2 = Quadratic(1.6 * A)
    fx2, gx2 = f2.loss_grad(x, None)
    res = tr_iteration(f2, None, x, fx2, gx2, 3.0, Dense(A), cfg)
    assert cfg.eta1 < res.rho < cfg.eta2 and res.radius == 3.0 and res.accepted


def rosenbrock_objective(counter, a=1.0, b=None):
    class Point(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.tensor([-1.2, 1.0], dtype=D))

        def forward(self, inp):
            return self.p

    def loss(fmodel, batch):
        p = fmodel(batch.x)
        split = 0.0 if b is None else (b - p[0]) ** 2  # two terms whose gradients need not cancel exactly
        return (a - p[0]) ** 2 + split + 100 * (p[1] - p[0] ** 2) ** 2

    return Objective(Point(), loss, counter, n_train=1)


@dataclass
class One:
    x: torch.Tensor
    size: int = 1


@pytest.mark.parametrize("qn", ["lsr1", "lbfgs", "hessian"])
def test_tr_method_on_rosenbrock_is_monotone_and_converges(qn):
    from ml2bench.core.hierarchy import Hierarchy

    counter = WorkCounter()
    obj = rosenbrock_objective(counter)
    H = Hierarchy([obj], [], counter)
    hp = {"model": "hessian"} if qn == "hessian" else {"qn": qn}
    m = METHODS.get("tr")(H, obj.initial_x(), {**hp, "grad_tol": 1e-8})
    batch = One(torch.zeros(1, dtype=D))
    losses = []
    for _ in range(300):
        r = m.step(batch)
        losses.append(r.loss)
        if r.converged:
            break
    assert r.converged, f"{qn}: ‖g‖ = {r.info['grad_norm']}"
    assert all(b <= a for a, b in zip(losses, losses[1:]))  # accepted iterates never increase f
    assert torch.allclose(m.x, torch.ones(2, dtype=D), atol=1e-6)
    if qn == "hessian":  # plus one per Hessian-vector product (≤ 2 CG iterations in 2-D)
        assert len(losses) < counter.grad_evals <= 3 * len(losses) + 1
        return
    # one charged evaluation per TR iteration, plus the initial one
    assert counter.grad_evals == len(losses) + 0 or counter.grad_evals == len(losses) + 1


def test_tr_rejects_inconsistent_thresholds():
    from ml2bench.core.hierarchy import Hierarchy

    counter = WorkCounter()
    obj = rosenbrock_objective(counter)
    with pytest.raises(ConfigError):
        METHODS.get("tr")(Hierarchy([obj], [], counter), obj.initial_x(), {"eta1": 0.95})


def test_secant_equations():
    torch.manual_seed(0)
    n = 12
    Q = torch.randn(n, n, dtype=D)
    A = Q @ Q.T / n + torch.diag(torch.linspace(-1.0, 3.0, n, dtype=D))  # symmetric, indefinite
    sr1, bfgs = LSR1(memory=4), LBFGS(memory=4)
    stored = []
    for _ in range(6):
        s = torch.randn(n, dtype=D)
        y = A @ s
        if sr1.update(s, y):
            stored.append((s, y))
        pd_y = (A.T @ A + torch.eye(n, dtype=D)) @ s  # a positive-definite "Hessian" for BFGS
        assert bfgs.update(s, pd_y)
        assert torch.allclose(bfgs.matvec(s), pd_y, atol=1e-8)  # newest pair
    assert len(sr1) == 4
    for s, y in zip(sr1.S, sr1.Y):  # hereditary: every stored pair (SᵀY symmetric on a quadratic)
        assert torch.allclose(sr1.matvec(s), y, atol=1e-8)
    B = bfgs.dense(n)
    assert torch.allclose(B, B.T, atol=1e-10) and float(torch.linalg.eigvalsh(B).min()) > 0
    v = torch.randn(n, dtype=D)
    assert torch.allclose(bfgs.solve(v), torch.linalg.solve(B, v), atol=1e-8)  # two-loop = B⁻¹
    # L-BFGS refuses a pair with negative curvature; L-SR1 accepts it (indefinite model)
    s = torch.randn(n, dtype=D)
    assert not bfgs.update(s, -s)
    assert make_qn("lsr1", 2).update(s, -s)


def test_tr_stops_with_roundoff_instead_of_spinning_without_work():
    """A collapsed radius (here forced: a subnormal Δ₀, whose square underflows; in practice at a
    round-off-level gradient) gives a null step: the method must stop with stop_reason
    "roundoff" and converged=False (seen before: tr with L-BFGS on the resnet benchmark looped
    forever at ‖g‖ ≈ 5e-9, Δ ≈ 5e-23; later it claimed convergence there)."""
    from ml2bench.core.hierarchy import Hierarchy

    counter = WorkCounter()
    obj = rosenbrock_objective(counter)
    m = METHODS.get("tr")(Hierarchy([obj], [], counter), obj.initial_x(), {"qn": "lbfgs", "radius0": 1e-320})
    r = m.step(One(torch.zeros(1, dtype=D)))
    assert not r.converged and r.stop_reason == "roundoff" and r.info["grad_norm"] > 1.0, r
    assert counter.grad_evals == 1  # the initial evaluation only: the null step is not charged


@pytest.mark.parametrize("qn", ["lsr1", "lbfgs", "hessian"])
def test_tr_without_grad_tol_ends_at_roundoff_and_charges_no_null_step(qn):
    """grad_tol = 0 holds only at an exact zero gradient, which this variant (two terms pulling x₁
    to 0.1 and 0.7) never reaches in floating point: the run must end by itself with
    "roundoff", not converged, soon after x stops changing (before: 1,928 charged no-op
    iterations on Rosenbrock, ended only by the budget)."""
    from ml2bench.core.hierarchy import Hierarchy

    counter = WorkCounter()
    obj = rosenbrock_objective(counter, a=0.1, b=0.7)
    hp = {"model": "hessian"} if qn == "hessian" else {"qn": qn}
    m = METHODS.get("tr")(Hierarchy([obj], [], counter), obj.initial_x(), hp)
    batch = One(torch.zeros(1, dtype=D))
    points = []
    for _ in range(2000):
        r = m.step(batch)
        points.append((m.x.clone(), counter.grad_evals))
        if r.stops:
            break
    assert r.stop_reason == "roundoff" and not r.converged, r
    assert torch.allclose(m.x, torch.tensor([0.4, 0.16], dtype=D), atol=1e-12)
    # rejected trials are charged (each is a new point) until the radius has shrunk below the
    # resolution of x; measured 1 (lsr1), 2 (lbfgs), 5 (hessian, with its products) charged
    # evaluations after the last move
    last_move = max(k for k in range(1, len(points)) if not torch.equal(points[k][0], points[k - 1][0]))
    assert points[-1][1] - points[last_move][1] <= 10


def test_cauchy_point_decreases_any_model_inside_the_region():
    from ml2bench.numerics.trust_region import cauchy_point

    torch.manual_seed(3)
    for _ in range(20):
        Q = torch.randn(5, 5, dtype=D)
        B = Q + Q.T  # indefinite in general
        g = torch.randn(5, dtype=D)
        radius = float(torch.rand(1)) * 3
        res = cauchy_point(g, lambda v: B @ v, radius)
        assert float(res.s.norm()) <= radius * (1 + 1e-12) and res.pred > 0
        assert abs(res.pred - (-(float(g @ res.s) + 0.5 * float(res.s @ B @ res.s)))) < 1e-10
        # it is the model's minimiser along −g within the region (grid check)
        ts = torch.linspace(0, radius / float(g.norm()), 2001, dtype=D)
        m = torch.stack([-(t * -(g @ g)) - 0.5 * t * t * (g @ B @ g) for t in ts])  # m(0) − m(−t g)
        assert res.pred >= float(m.max()) - 1e-9


def test_tr_iteration_falls_back_to_the_cauchy_point_when_cg_predicts_no_decrease(monkeypatch):
    import ml2bench.numerics.trust_region as tr_mod
    from ml2bench.numerics.trust_region import CGResult

    A = torch.diag(torch.tensor([2.0, 1.0], dtype=D))
    f = Quadratic(A)
    x = torch.tensor([1.0, 1.0], dtype=D)
    fx, gx = f.loss_grad(x, None)
    # a CG result that predicts an increase (what a broken model produced on Brown badly scaled)
    monkeypatch.setattr(tr_mod, "steihaug_cg", lambda g, *a, **k: CGResult(g.clone(), -1.0, "converged", 1))
    res = tr_iteration(f, None, x, fx, gx, 0.1, Dense(A), TRConfig())
    assert res.cg_status == "cauchy" and res.accepted and res.f < fx
    assert torch.allclose(res.x - x, -0.1 * gx / gx.norm(), atol=1e-14)  # boundary: gᵀBg small here


def test_lbfgs_compact_form_is_stable_on_badly_scaled_pairs():
    """Pairs from a quadratic with eigenvalues 1e-6 … 1e6 (the compact middle matrix then has
    condition ~1e17): the Cholesky-based B must equal the explicit BFGS recursion."""
    torch.manual_seed(0)
    n = 6
    A = torch.diag(torch.logspace(-6, 6, n, dtype=D))
    bfgs = LBFGS(memory=4)
    pairs = []
    for _ in range(4):
        s = torch.randn(n, dtype=D)
        y = A @ s
        assert bfgs.update(s, y)
        pairs.append((s, y))
    B = bfgs.delta * torch.eye(n, dtype=D)  # explicit recursion from B₀ = δI
    for s, y in pairs:
        Bs = B @ s
        B = B - torch.outer(Bs, Bs) / float(s @ Bs) + torch.outer(y, y) / float(s @ y)
    got = bfgs.dense(n)
    assert torch.allclose(got, B, rtol=1e-6, atol=1e-6 * float(B.abs().max()))
    for s, y in pairs[-1:]:
        assert torch.allclose(bfgs.matvec(s), y, rtol=1e-8, atol=1e-8 * float(y.norm()))


def test_quasi_newton_updates_skip_pairs_that_ruin_conditioning():
    n = 4
    s = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=D)
    y = torch.tensor([1e-12, 1.0, 0.0, 0.0], dtype=D)  # sᵀy = 1e-12 ≪ ‖s‖‖y‖
    bfgs = LBFGS(memory=3)
    assert not bfgs.update(s, y) and len(bfgs) == 0
    assert not bfgs.update(s, torch.full((n,), float("nan"), dtype=D))
    assert not make_qn("lsr1", 3).update(s, torch.full((n,), float("inf"), dtype=D))
    # δ stays finite and bounded on an extreme but admissible pair
    assert bfgs.update(s, torch.tensor([1e-200, 0, 0, 0], dtype=D))
    assert 0 < bfgs.delta < math.inf and torch.isfinite(bfgs.dense(n)).all()


def _mlp_objective(counter, cost_ratio=1.0):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 3)).double()
    X, Y = torch.randn(64, 8, dtype=D), torch.randn(64, 3, dtype=D)

    def loss(fmodel, batch):
        return ((fmodel(X) - Y) ** 2).mean()

    return Objective(net, loss, counter, n_train=1, level=1, cost_ratio=cost_ratio)


def test_hessian_vector_products_are_charged_at_their_measured_cost():
    """One product = one evaluation in grad_evals, its measured operation ratio to a gradient
    (× the level's cost ratio) in work units. Measured ratio: 2.46 on this MLP (a forward, a
    backward with graph, a second backward), 2.12 on Rosenbrock's elementwise loss."""
    from ml2bench.core.cost.opcount import hvp_cost_ratio

    counter = WorkCounter()
    obj = _mlp_objective(counter, cost_ratio=0.5)
    x, batch = obj.initial_x(), One(torch.zeros(1, dtype=D))
    v = torch.randn_like(x)
    ratio = hvp_cost_ratio(obj, x, v, batch)
    assert 1.8 < ratio < 3.0
    assert obj.measure_hvp_cost(batch, x) == ratio  # measured once beforehand (the runner does), uncharged
    assert counter.grad_evals == 0
    hv = obj.hvp(x, v, batch)
    obj.hvp(x, 2 * v, batch)
    assert counter.grad_evals == 2.0
    assert counter.work_units == pytest.approx(2 * 0.5 * ratio, rel=1e-12)
    # and it is the Hessian-vector product (finite differences of the gradient)
    eps = 1e-6
    gp = obj.loss_grad(x + eps * v, batch)[1]
    gm = obj.loss_grad(x - eps * v, batch)[1]
    assert torch.allclose(hv, (gp - gm) / (2 * eps), atol=1e-6)
    rosen = rosenbrock_objective(WorkCounter())
    r = hvp_cost_ratio(rosen, rosen.initial_x(), torch.ones(2, dtype=D), batch)
    assert 1.5 < r < 4.0, r


def test_cauchy_point_with_a_vanishing_radius_predicts_nothing():
    from ml2bench.numerics.trust_region import cauchy_point

    for g, radius in (([1.0, -2.0], 0.0), ([1e-160, 0.0], 1e-170)):  # Δ gᵀBg is 0 or underflows to 0
        res = cauchy_point(torch.tensor(g, dtype=D), lambda v: 3.0 * v, radius)  # was: ZeroDivisionError
        assert res.pred >= 0.0 and float(res.s.norm()) <= radius


@pytest.mark.parametrize("qn", ["lsr1", "lbfgs"])
def test_tr_next_to_an_exact_minimiser_stops_with_a_reason(qn):
    """f(x) = |x|^1.5 at x = 1e-310, next to its minimiser 0: f underflows to 0 while ‖g‖ = 1.5e-155
    does not, so no trial decreases f, every trial is rejected and Δ gᵀBg underflows to 0. Before:
    ZeroDivisionError in cauchy_point (a failed run); now the method stops with "roundoff"."""
    from ml2bench.core.hierarchy import Hierarchy

    class Point(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.tensor([1e-310], dtype=D))

        def forward(self, inp):
            return self.p

    counter = WorkCounter()
    obj = Objective(Point(), lambda fmodel, batch: (fmodel(batch.x).abs() ** 1.5).sum(), counter, n_train=1)
    m = METHODS.get("tr")(Hierarchy([obj], [], counter), obj.initial_x(), {"qn": qn})
    batch = One(torch.zeros(1, dtype=D))
    for _ in range(5000):
        r = m.step(batch)
        if r.stops:
            break
    assert r.stop_reason == "roundoff" and not r.converged and r.loss == 0.0, r
    assert r.info["grad_norm"] > 1e-156


def test_first_order_model_steps_to_the_cauchy_point_of_the_linear_model():
    """B = 0: s = −Δ g/‖g‖ with predicted decrease Δ‖g‖, for any radius; ρ = ared / (Δ‖g‖) decides,
    and the model learns nothing from the pair (the next step is again along −g)."""
    from ml2bench.numerics.quasi_newton import FirstOrder, make_model

    A = torch.diag(torch.tensor([4.0, 1.0], dtype=D))
    f = Quadratic(A)
    x = torch.tensor([1.0, 2.0], dtype=D)
    fx, gx = f.loss_grad(x, None)
    model = make_model("first_order", "lbfgs", 5)
    assert isinstance(model, FirstOrder)
    for radius in (0.1, 1.0):
        res = tr_iteration(f, None, x, fx, gx, radius, model, TRConfig())
        s = -radius * gx / gx.norm()
        pred = radius * float(gx.norm())
        f_s = float(0.5 * (x + s) @ A @ (x + s))
        assert res.rho == pytest.approx((fx - f_s) / pred, rel=1e-12)
        assert res.step_norm == pytest.approx(radius, rel=1e-12)
        if res.accepted:
            assert torch.allclose(res.x, x + s, rtol=0, atol=1e-14)
    assert len(model) == 0
