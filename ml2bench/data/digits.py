"""scikit-learn's bundled 8x8 digits: a real dataset that needs no download."""

from __future__ import annotations

import numpy as np

from ml2bench.data.dataset import Dataset


def load_digits(seed: int, test_fraction: float = 0.25) -> Dataset:
    """Load digits as (N, 1, 8, 8) floats in [0, 1] with a stratified split.

    Stratified so small test sets still contain every class; the split depends
    only on ``seed`` so runs are reproducible.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    from ml2bench.core.cost.cache import cached_arrays

    x_tr, x_te, y_tr, y_te = cached_arrays(_split, int(seed), float(test_fraction))
    return Dataset.from_arrays((x_tr, y_tr, x_te, y_te), num_classes=10, input_shape=(1, 8, 8), name="digits")


def _split(seed: int, test_fraction: float) -> tuple[np.ndarray, ...]:
    """The stratified split; cached on disk by the caller, because importing scikit-learn costs
    ~1 s of a run's start-up (more than a short run trains)."""
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = _sk_load_digits()
    x = (np.asarray(bunch.data, dtype=np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = np.asarray(bunch.target, dtype=np.int64)
    return tuple(train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y))
