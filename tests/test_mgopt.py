"""MG/OPT: coherence on a depth hierarchy of ODE-ResNets, the fine line search, monotonicity."""

from dataclasses import dataclass

import pytest
import torch

from ml2bench.core.hierarchy import Hierarchy
from ml2bench.core.objective import Objective, WorkCounter
from ml2bench.methods import METHODS
from ml2bench.methods.mgopt import armijo
from ml2bench.multilevel.coarse import coherent_model
from ml2bench.multilevel.depth import DepthTransfer
from ml2bench.multilevel.norms import prolongation_T
from ml2bench.nn.odenet import DenseODEResNet
from ml2bench.problems.grid.testproblems import grid_hierarchy

D = torch.float64


@dataclass
class XY:
    x: torch.Tensor
    y: torch.Tensor
    size: int


def resnet_hierarchy(kind="constant", levels=3, depth=8):
    torch.manual_seed(0)
    counter = WorkCounter()
    models = [DenseODEResNet(3, 5, 2, depth // 2**l).double() for l in range(levels)]

    def loss(f, batch):
        return ((f(batch.x) - batch.y) ** 2).mean()

    objectives = [Objective(m, loss, counter, n_train=16, level=l, cost_ratio=0.5**l) for l, m in enumerate(models)]
    transfers = [DepthTransfer(models[l], models[l + 1], kind) for l in range(levels - 1)]
    x = torch.randn(16, 3, dtype=D)
    batch = XY(x, torch.stack([x.sum(1).sin(), x[:, 0] * x[:, 1]], 1), 16)
    return Hierarchy(objectives, transfers, counter), batch


def test_coherence_on_resnet_depth_hierarchy():
    for kind in ("constant", "linear"):
        H, batch = resnet_hierarchy(kind)
        x = H.fine.initial_x() + 0.1 * torch.randn(H.fine.n, dtype=D)
        _, g = H.fine.loss_grad(x, batch)
        t = H.transfers[0]
        # R_g is the exact transpose of P (checked against reverse-mode differentiation of P)
        assert torch.allclose(t.restrict_grad(g), prolongation_T(t, g, H.objectives[1].n), atol=1e-14)
        assert torch.allclose(t.restrict(t.prolongate(t.restrict(x))), t.restrict(x), atol=1e-14)  # R_x P = I
        model, y0, psi0, gpsi0 = coherent_model(H.objectives[1], t, x, g, batch)
        value, grad = model.loss_grad(y0, batch)
        assert abs(value - psi0) < 1e-13
        assert torch.allclose(grad, t.restrict_grad(g), rtol=0, atol=1e-14)
        # directional derivative by central differences agrees with ⟨R_g g, d⟩
        d = torch.randn_like(y0)
        eps = 1e-6
        fd = (model.loss(y0 + eps * d, batch) - model.loss(y0 - eps * d, batch)) / (2 * eps)
        assert abs(fd - float(t.restrict_grad(g) @ d)) < 1e-7 * max(1.0, abs(fd))


def test_armijo_accepts_only_descent():
    H, batch = grid_hierarchy("poisson", 15, 1, levels=1)
    x = torch.zeros(H.fine.n, dtype=D)
    f, g = H.fine.loss_grad(x, batch)
    assert armijo(H.fine, batch, x, f, g, g, 1.0, 1e-4, 10) is None  # ascent direction refused
    out = armijo(H.fine, batch, x, f, g, -1e3 * g, 1.0, 1e-4, 20)  # far too long: backtracks
    assert out is not None
    x1, f1, g1, alpha = out
    assert f1 < f and alpha < 1.0
    assert torch.allclose(H.fine.loss_grad(x1, batch)[1], g1)


def test_armijo_decides_on_the_decrease_not_on_round_off():
    """Next to the minimiser the Armijo decrease c₁α|gᵀd| is far below the round-off of f
    (|f| ≈ 2.5 here, decrease ≈ 1e-19): comparing raw values decides on noise. The test on the
    round-off-safe decrease (exact on this quadratic) accepts the descent step."""
    import numpy as np
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    H, batch = grid_hierarchy("poisson", 63, 1, levels=1)
    n = H.fine.n
    h = 1.0 / (n + 1)
    A = sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1]) / h
    b = h * np.pi**2 * np.sin(np.pi * np.arange(1, n + 1) * h)
    x_star = torch.tensor(spla.spsolve(A.tocsc(), b))
    accepted = 0
    for seed in range(20):  # raw comparisons of f accepted 12 of these 20 steps (measured)
        x = x_star + 1e-10 * torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=D)
        f, g = H.fine.loss_grad(x, batch)
        alpha = 1.0 / 400.0  # below 2/λ_max = h/2: a decrease on the quadratic
        f_t, _ = H.fine.loss_grad(x - alpha * g, batch)
        assert abs(f - f_t) < 1e-14 * abs(f)  # the raw difference is at round-off level
        out = armijo(H.fine, batch, x, f, g, -g, alpha, 1e-4, 1)
        accepted += out is not None and float(out[2].norm()) < float(g.norm())
    assert accepted == 20, accepted


def test_mgopt_on_resnet_monotone_with_every_smoother():
    for smoother in ("lbfgs", "gd_ls", "tr"):
        H, batch = resnet_hierarchy()
        m = METHODS.get("mgopt")(H, H.fine.initial_x(), {"levels": 3, "smoother": smoother})
        losses = [m.step(batch).loss for _ in range(6)] + [m._f]
        assert all(b <= a for a, b in zip(losses, losses[1:])), (smoother, losses)
        assert losses[-1] < 0.9 * losses[0], smoother
        assert set(H.counter.by_level) == {0, 1, 2}


def test_mgopt_without_coarse_levels_is_gradient_descent():
    H, batch = grid_hierarchy("poisson", 31, 2, levels=1)
    m = METHODS.get("mgopt")(H, H.fine.initial_x(), {"levels": 1, "smoother": "gd", "lr": 0.2, "coarse_steps": 3})
    x = H.fine.initial_x()
    for _ in range(3):
        x = x - 0.2 * H.fine.loss_grad(x, batch)[1]
    m.step(batch)
    assert torch.allclose(m.x, x, atol=1e-14)


def test_radius0_beyond_radius_max_is_a_clear_error():
    from ml2bench.core.params import ConfigError

    H, _ = grid_hierarchy("poisson", 7, 1)
    with pytest.raises(ConfigError, match=r"radius0=10.0 exceeds radius_max=1.0"):
        METHODS.get("mgopt")(H, H.fine.initial_x(), {"levels": 2, "radius0": 10.0, "radius_max": 1.0})
