"""Batch-growth rules (ml2bench.numerics.sampling) and RMTR's hybrid stochastic–deterministic mode."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pytest
import torch

from ml2bench.core.config import RunConfig
from ml2bench.core.runner import run
from ml2bench.numerics.sampling import (
    AdaptiveBatch,
    BatchSampler,
    estimate_variance,
    next_batch_size,
    required_size,
    split_batch,
)


@dataclass
class Points:
    c: torch.Tensor
    size: int


class NoisyQuadratic:
    """f(x) = mean_i ½‖x − c_i‖², c_i = μ + σ ξ_i: ∇f_i = x − c_i, per-sample variance trace d σ²."""

    def __init__(self, n: int, d: int, sigma: float, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.mu = torch.ones(d, dtype=torch.float64)
        self.c = self.mu + sigma * torch.randn(n, d, generator=g, dtype=torch.float64)
        self.n, self.evaluated = n, 0

    def train_batches(self, size, generator):
        if size is None:
            yield Points(self.c, self.n)
            return
        perm = torch.randperm(self.n, generator=generator)
        for a in range(0, self.n, size):
            idx = perm[a : a + size]
            yield Points(self.c[idx], idx.numel())

    def loss_grad(self, x, batch):
        self.evaluated += batch.size
        r = x - batch.c
        return float(0.5 * r.square().sum(1).mean()), r.mean(0)


def test_norm_test_threshold_closed_form():
    # two micro-batches of b samples, g_1,2 = g ± δ: Var_i ≈ b·2‖δ‖² and |S| = 2b, so the norm test
    # Var_i/|S| <= θ²‖g‖² holds exactly when ‖δ‖ <= θ‖g‖
    g = torch.tensor([1.0, 0.0], dtype=torch.float64)
    theta, b = 0.5, 10
    for delta_norm, grows in ((0.49, False), (0.51, True)):
        delta = torch.tensor([0.0, delta_norm], dtype=torch.float64)
        est = estimate_variance(torch.stack([g + delta, g - delta]), [b, b])
        assert torch.allclose(est.grad, g)
        assert est.var_norm == pytest.approx(2 * b * delta_norm**2)
        new = next_batch_size("norm_test", 2 * b, est, theta, n_train=10_000)
        assert (new > 2 * b) == grows
        if grows:  # the size at which the test would hold: Var_i / (θ²‖g‖²)
            assert new == math.ceil(2 * b * delta_norm**2 / theta**2)
    # δ orthogonal to g: the inner-product test sees no variance along g (only the orthogonality test, ν ≈ 5.67)
    est = estimate_variance(
        torch.stack([g + torch.tensor([0.0, 0.51]), g - torch.tensor([0.0, 0.51])]).double(), [b, b]
    )
    assert est.var_inner == pytest.approx(0.0, abs=1e-12)
    assert next_batch_size("inner_product", 2 * b, est, theta, n_train=10_000) == 2 * b
    # the same spread along g fails the inner-product test too
    est = estimate_variance(torch.stack([g * 1.51, g * 0.49]), [b, b])
    assert next_batch_size("inner_product", 2 * b, est, theta, n_train=10_000) > 2 * b
    assert required_size("norm_test", estimate_variance(torch.zeros(2, 2), [1, 1]), theta) == math.inf


def test_variance_estimate_is_unbiased_on_average():
    # per-sample variance trace d σ² = 4 · 0.25 = 1; mean of the micro-batch estimates over 400 draws
    q = NoisyQuadratic(n=100_000, d=4, sigma=0.5)
    x = torch.zeros(4, dtype=torch.float64)
    sampler = BatchSampler(q.train_batches, q.n, torch.Generator().manual_seed(1))
    vals = []
    for _ in range(400):
        parts = split_batch(sampler.draw(64), 8)
        grads = torch.stack([q.loss_grad(x, p)[1] for p in parts])
        vals.append(estimate_variance(grads, [p.size for p in parts]).var_norm)
    assert sum(vals) / len(vals) == pytest.approx(1.0, rel=0.1)  # measured 1.004 (seeded)


@pytest.mark.parametrize("rule", ["norm_test", "inner_product"])
def test_batch_grows_near_the_minimiser_and_reaches_full_batch(rule):
    q = NoisyQuadratic(n=4096, d=4, sigma=0.5)
    x = torch.full((4,), 6.0, dtype=torch.float64)  # far away: ‖g‖² ≈ 100 ≫ Var_i/|S| ≈ 1/16
    growth = AdaptiveBatch(rule, initial=16, theta=0.5, groups=8)
    growth.sampler = BatchSampler(q.train_batches, q.n, torch.Generator().manual_seed(0))
    sizes = []
    for _ in range(200):
        batch, fg = growth.draw(q, x)
        sizes.append(batch.size)
        g = fg[1] if fg is not None else q.loss_grad(x, batch)[1]
        x = x - 0.5 * g  # gradient descent with step ½ on a quadratic of curvature 1
    assert sizes[0] == 16 and sizes[1] == 16  # the test holds far from the minimiser: no growth
    assert sizes == sorted(sizes)  # never shrinks
    assert sizes[-1] == q.n  # full batch near the minimiser (the sampled gradient is noise there)
    assert growth.sampler.samples == sum(sizes)


def test_split_batch_rejects_pinn_like_batches():
    @dataclass
    class Odd:
        x: torch.Tensor
        conditions: dict
        size: int

    with pytest.raises(TypeError, match="conditions"):
        split_batch(Odd(torch.zeros(4, 2), {}, 4), 2)
    parts = split_batch(Points(torch.arange(10.0)[:, None], 10), 3)
    assert [p.size for p in parts] == [3, 4, 3] and torch.equal(
        torch.cat([p.c for p in parts]), torch.arange(10.0)[:, None]
    )


def _cfg(**method_params):
    return RunConfig.from_dict(
        {
            "problem": "resnet",
            "method": "rmtr",
            "seed": 0,
            "problem_params": {"dataset": "peaks", "width": 4, "depth": 16, "n_train": 512, "n_test": 128},
            "method_params": {"levels": 2, **method_params},
            "budget": {"iterations": 12},
            "eval_interval": 100.0,
        }
    )


def test_rmtr_hybrid_mode_runs_and_charges_its_own_batches():
    res = run(_cfg(batch_growth="norm_test", initial_batch=32))
    s = res.summary.iloc[0]
    assert s["status"] == "budget_exhausted", s["error"]
    assert s["iterations"] == 12
    # epochs count the samples the method drew, not the runner's full batch (12 full batches = 12 epochs)
    assert 0 < s["epochs"] < 12
    # every evaluation of the fine level is charged at batch.size / n_train: far less than 12 full-batch cycles
    det = run(_cfg()).summary.iloc[0]
    assert s["grad_evals"] < det["grad_evals"]


def test_deterministic_mode_unchanged_and_never_samples(monkeypatch):
    # with batch_growth="none" the runner's sampler is never drawn from, and the run is bit-identical
    # to one where no sampler is attached at all
    def boom(self, size):
        raise AssertionError("deterministic RMTR drew from the sampler")

    monkeypatch.setattr(BatchSampler, "draw", boom)
    a = run(_cfg(batch_growth="none"))
    assert a.status == "budget_exhausted", a.summary["error"].iloc[0]
    from ml2bench.methods.rmtr import RMTR

    monkeypatch.delattr(RMTR, "set_sampler")
    b = run(_cfg())
    cols = ["train_loss", "test_metric", "grad_evals", "work_units", "epoch"]
    assert a.history[cols].equals(b.history[cols])
    assert json.loads(a.summary["method_params"].iloc[0])["batch_growth"] == "none"


def test_batch_growth_on_batches_that_cannot_split_is_bad_input():
    """A PINN batch (collocation points plus boundary sets) cannot be split sample by sample: RMTR's
    batch growth is refused with a ConfigError before any work, not a failed run."""
    from ml2bench.core.config import RunConfig
    from ml2bench.core.params import ConfigError
    from ml2bench.core.runner import run

    config = RunConfig.from_dict(
        {
            "problem": "pinn_poisson",
            "method": "rmtr",
            "problem_params": {"n_interior": 64, "n_boundary": 16, "n_test": 11, "width": 8, "depth": 4},
            "method_params": {"batch_growth": "norm_test"},
            "budget": {"iterations": 1},
        }
    )
    with pytest.raises(ConfigError, match="batch growth 'norm_test' is not possible here: cannot split a PINNBatch"):
        run(config)
