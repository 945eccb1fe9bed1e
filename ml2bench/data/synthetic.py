"""Synthetic 2-D classification sets of the ResNet-as-ODE literature, as deterministic generators.

Haber & Ruthotto (2017) and the multilevel-training papers after them train deep residual networks
on small 2-D sets where the class boundaries are curved enough that depth matters. The recipes follow
the public Meganet.m code (``setupPeaks.m``, ``setupSwissRoll.m``, ``setupEllipses.m``):

* **peaks** (5 classes): MATLAB's ``peaks`` surface
  z(x, y) = 3(1−x)² e^{−x²−(y+1)²} − 10(x/5 − x³ − y⁵) e^{−x²−y²} − ⅓ e^{−(x+1)²−y²}
  on a 256×256 grid of [−3, 3]²; [min z, max z] is cut into 5 equal-width bands, band k = class k
  (the top edge belongs to band 4); each class draws its share of grid points uniformly *with
  replacement*; features (x, y).
* **swiss_roll** (2 classes): two interleaved spirals on θ ∈ [0, 4π]; class 0 at radius
  r = θ/(4π) ∈ [0, 1], class 1 at r = 0.2 + θ/(4π) ∈ [0.2, 1.2]; points (r cos θ, r sin θ) on an
  evenly spaced θ grid of n_train/2 + n_test/2 points per class; the test points are a seeded
  random subset of the grid (Meganet alternates points; a seeded split allows any ratio).
* **ellipses** (2 classes): two concentric elliptic annuli (r cos θ, 0.4 r sin θ), θ ~ U(0, 2π),
  r ~ U(0, 1) for class 0 and U(1, 2) for class 1.

Every set is balanced: a split of n samples over k classes gives each class ⌊n/k⌋ samples and the
first n mod k classes one more. Train and test are drawn from independent streams of ``seed``.
``label_noise`` p replaces round(p·n_train) training labels, chosen without replacement, by a
uniformly drawn *different* class (test labels stay clean, so accuracy measures the clean rule).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ml2bench.data.dataset import Dataset

SYNTHETIC_NAMES: tuple[str, ...] = ("peaks", "swiss_roll", "ellipses")
PEAKS_GRID = 256
PEAKS_CLASSES = 5


def peaks(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """MATLAB's ``peaks`` function (closed form)."""
    return (
        3 * (1 - x) ** 2 * np.exp(-(x**2) - (y + 1) ** 2)
        - 10 * (x / 5 - x**3 - y**5) * np.exp(-(x**2) - y**2)
        - np.exp(-((x + 1) ** 2) - y**2) / 3
    )


def class_counts(n: int, k: int) -> list[int]:
    """Balanced counts of n samples over k classes (the first n mod k classes get one more)."""
    return [n // k + (c < n % k) for c in range(k)]


def peaks_grid(grid: int = PEAKS_GRID, classes: int = PEAKS_CLASSES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid points (grid², 2), their class (band of z), and the band edges (classes + 1)."""
    t = np.linspace(-3.0, 3.0, grid)
    xx, yy = np.meshgrid(t, t)
    z = peaks(xx, yy).ravel()
    edges = np.linspace(z.min(), z.max(), classes + 1)
    label = np.clip(np.searchsorted(edges, z, side="right") - 1, 0, classes - 1)
    return np.stack([xx.ravel(), yy.ravel()], axis=1), label, edges


def _peaks(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    points, label, _ = peaks_grid()
    xs, ys = [], []
    for c, m in enumerate(class_counts(n, PEAKS_CLASSES)):
        idx = rng.choice(np.flatnonzero(label == c), size=m, replace=True)
        xs.append(points[idx])
        ys.append(np.full(m, c))
    return np.concatenate(xs), np.concatenate(ys)


def _ellipses(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for c, m in enumerate(class_counts(n, 2)):
        r = rng.uniform(float(c), float(c + 1), m)
        theta = rng.uniform(0.0, 2 * math.pi, m)
        xs.append(np.stack([r * np.cos(theta), 0.4 * r * np.sin(theta)], axis=1))
        ys.append(np.full(m, c))
    return np.concatenate(xs), np.concatenate(ys)


def _swiss_roll(
    n_train: int, n_test: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    parts: dict[str, tuple[list, list]] = {"train": ([], []), "test": ([], [])}
    for c, (m_tr, m_te) in enumerate(zip(class_counts(n_train, 2), class_counts(n_test, 2))):
        m = m_tr + m_te
        theta = np.linspace(0.0, 4 * math.pi, m)
        r = np.linspace(0.2 * c, 1.0 + 0.2 * c, m)
        pts = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
        test = np.zeros(m, dtype=bool)
        test[rng.choice(m, size=m_te, replace=False)] = True
        for split, mask in (("train", ~test), ("test", test)):
            parts[split][0].append(pts[mask])
            parts[split][1].append(np.full(int(mask.sum()), c))
    x_tr, y_tr = (np.concatenate(a) for a in parts["train"])
    x_te, y_te = (np.concatenate(a) for a in parts["test"])
    return x_tr, y_tr, x_te, y_te


def flip_labels(y: np.ndarray, fraction: float, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Replace round(fraction·n) labels (without replacement) by a uniformly drawn different class."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"label_noise must be in [0, 1], got {fraction}")
    y = y.copy()
    k = int(round(fraction * y.size))
    if k == 0 or num_classes < 2:
        return y
    idx = rng.choice(y.size, size=k, replace=False)
    y[idx] = (y[idx] + rng.integers(1, num_classes, size=k)) % num_classes  # never the old class
    return y


def make_synthetic(name: str, n_train: int, n_test: int, seed: int, label_noise: float = 0.0) -> Dataset:
    """Generate data set ``name`` (see module docstring); the same arguments give the same tensors."""
    if name not in SYNTHETIC_NAMES:
        raise ValueError(f"unknown synthetic data set {name!r}; allowed: {', '.join(SYNTHETIC_NAMES)}")
    if n_train < 1 or n_test < 1:
        raise ValueError(f"{name}: n_train and n_test must be >= 1, got {n_train}, {n_test}")
    train_ss, test_ss, noise_ss, perm_ss = np.random.SeedSequence([seed, SYNTHETIC_NAMES.index(name)]).spawn(4)
    rng_tr, rng_te = np.random.default_rng(train_ss), np.random.default_rng(test_ss)
    num_classes = PEAKS_CLASSES if name == "peaks" else 2
    if name == "swiss_roll":
        x_tr, y_tr, x_te, y_te = _swiss_roll(n_train, n_test, rng_tr)
    else:
        gen = _peaks if name == "peaks" else _ellipses
        (x_tr, y_tr), (x_te, y_te) = gen(n_train, rng_tr), gen(n_test, rng_te)
    # shuffle so that a prefix (Dataset.subset) or a mini-batch is not one class
    perm_rng = np.random.default_rng(perm_ss)
    p_tr, p_te = perm_rng.permutation(n_train), perm_rng.permutation(n_test)
    x_tr, y_tr, x_te, y_te = x_tr[p_tr], y_tr[p_tr], x_te[p_te], y_te[p_te]
    y_tr = flip_labels(y_tr, label_noise, num_classes, np.random.default_rng(noise_ss))
    return Dataset(
        x_train=torch.from_numpy(np.ascontiguousarray(x_tr, dtype=np.float32)),
        y_train=torch.from_numpy(np.ascontiguousarray(y_tr, dtype=np.int64)),
        x_test=torch.from_numpy(np.ascontiguousarray(x_te, dtype=np.float32)),
        y_test=torch.from_numpy(np.ascontiguousarray(y_te, dtype=np.int64)),
        num_classes=num_classes,
        input_shape=(2,),
        name=name,
    )
