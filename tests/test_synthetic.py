"""The recipes of the synthetic 2-D classification sets (ml2bench.data.synthetic)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ml2bench.data.synthetic import (
    PEAKS_CLASSES,
    SYNTHETIC_NAMES,
    class_counts,
    flip_labels,
    make_synthetic,
    peaks,
    peaks_grid,
)


def _peaks_closed_form(x: float, y: float) -> float:
    """MATLAB's documented peaks formula, written out independently of the module."""
    return (
        3 * (1 - x) ** 2 * math.exp(-x * x - (y + 1) ** 2)
        - 10 * (x / 5 - x**3 - y**5) * math.exp(-x * x - y * y)
        - math.exp(-((x + 1) ** 2) - y * y) / 3
    )


@pytest.mark.parametrize("name", SYNTHETIC_NAMES)
@pytest.mark.parametrize("n_train,n_test", [(500, 200), (101, 33)])
def test_balanced_sizes_and_shapes(name, n_train, n_test):
    d = make_synthetic(name, n_train, n_test, seed=3)
    assert d.x_train.shape == (n_train, 2) and d.x_test.shape == (n_test, 2)
    k = d.num_classes
    assert k == (PEAKS_CLASSES if name == "peaks" else 2)
    for y, n in ((d.y_train, n_train), (d.y_test, n_test)):
        counts = torch.bincount(y, minlength=k).tolist()
        assert counts == class_counts(n, k)
        assert max(counts) - min(counts) <= 1


@pytest.mark.parametrize("name", SYNTHETIC_NAMES)
def test_deterministic_from_seed(name):
    a, b = make_synthetic(name, 300, 100, seed=5), make_synthetic(name, 300, 100, seed=5)
    c = make_synthetic(name, 300, 100, seed=6)
    for split in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, split), getattr(b, split))
    assert not torch.equal(a.x_train, c.x_train) or not torch.equal(a.y_train, c.y_train)


def test_peaks_formula_and_band_edges():
    # the module's peaks against the closed form at a few points, MATLAB's peaks(0, 0) = 0.9810
    for x, y in [(0.0, 0.0), (1.3, -0.7), (-2.5, 2.9)]:
        assert peaks(np.array(x), np.array(y)) == pytest.approx(_peaks_closed_form(x, y), rel=1e-12)
    assert peaks(np.array(0.0), np.array(0.0)) == pytest.approx(0.98101, abs=1e-5)
    points, label, edges = peaks_grid()
    assert points.shape == (256 * 256, 2) and points.min() == -3.0 and points.max() == 3.0
    z = np.array([_peaks_closed_form(x, y) for x, y in points])
    assert edges[0] == pytest.approx(z.min()) and edges[-1] == pytest.approx(z.max())
    assert np.allclose(np.diff(edges), (z.max() - z.min()) / 5)  # equal-width bands
    # every grid point's class is the band its closed-form value falls in
    assert np.all(z >= edges[label] - 1e-12) and np.all(z <= edges[label + 1] + 1e-12)
    assert set(np.unique(label)) == set(range(5))
    # sampled points are grid points whose band is their label
    d = make_synthetic("peaks", 400, 50, seed=0)
    for (x, y), c in zip(d.x_train.double().numpy()[:50], d.y_train.numpy()[:50]):
        v = _peaks_closed_form(x, y)
        assert edges[c] - 1e-5 <= v <= edges[c + 1] + 1e-5


def test_swiss_roll_and_ellipses_geometry():
    d = make_synthetic("swiss_roll", 400, 100, seed=1)
    x = torch.cat([d.x_train, d.x_test]).double()
    y = torch.cat([d.y_train, d.y_test])
    r = x.norm(dim=1)
    theta = torch.atan2(x[:, 1], x[:, 0]) % (2 * math.pi)
    assert r[y == 0].min() >= 0 and r[y == 0].max() <= 1 + 1e-6
    assert r[y == 1].min() >= 0.2 - 1e-6 and r[y == 1].max() <= 1.2 + 1e-6
    # on the spiral: r = r_min + θ_total / (4π) with θ_total ≡ θ (mod 2π)
    for c, r0 in ((0, 0.0), (1, 0.2)):
        turns = (r[y == c] - r0) * 4 * math.pi
        assert torch.allclose(
            torch.remainder(turns - theta[y == c] + 1e-4, 2 * math.pi), torch.tensor(1e-4, dtype=x.dtype), atol=1e-3
        )
    e = make_synthetic("ellipses", 1000, 10, seed=2)
    u = e.x_train.double()
    rho = torch.sqrt(u[:, 0] ** 2 + (u[:, 1] / 0.4) ** 2)  # the radius r of (r cos θ, 0.4 r sin θ)
    assert rho[e.y_train == 0].max() <= 1 and rho[e.y_train == 1].min() >= 1 and rho[e.y_train == 1].max() <= 2


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.37])
def test_label_noise_fraction(fraction):
    clean = make_synthetic("peaks", 1000, 100, seed=4)
    noisy = make_synthetic("peaks", 1000, 100, seed=4, label_noise=fraction)
    assert torch.equal(clean.x_train, noisy.x_train) and torch.equal(clean.y_test, noisy.y_test)
    changed = int((clean.y_train != noisy.y_train).sum())
    assert changed == round(fraction * 1000)
    y = np.arange(10) % 3
    assert (flip_labels(y, 0.5, 3, np.random.default_rng(0)) != y).sum() == 5
    with pytest.raises(ValueError, match="label_noise"):
        flip_labels(y, 1.5, 3, np.random.default_rng(0))


def test_problem_option():
    from ml2bench.problems import PROBLEMS

    cls = PROBLEMS.get("mlp")
    hp = cls.params.validate({"dataset": "ellipses", "n_train": 200, "n_test": 50, "label_noise": 0.1}, "mlp")
    prob = cls(hp, seed=0, device=torch.device("cpu"), dtype=torch.float32)
    assert prob.n_train == 200 and prob.data.num_classes == 2
    rcls = PROBLEMS.get("resnet")
    hp = rcls.params.validate({"dataset": "peaks", "depth": 8, "width": 4}, "resnet")
    prob = rcls(hp, seed=0, device=torch.device("cpu"), dtype=torch.float32)
    assert prob.n_train == 1000 and prob.build_model(0).closing.out_features == 5
