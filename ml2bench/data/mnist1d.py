"""MNIST-1D (Greydanus & Kobak, ICML 2024): ten 1-D digit templates, padded, scaled, translated,
sheared and noised into 40-sample signals; generated offline by the ``mnist1d`` package
(Apache-2.0, an optional extra: ``pip install ml2bench[mnist1d]``), never downloaded.

The package's ``make_dataset`` builds the set from its templates with the published arguments
(``get_dataset_args``: 5000 samples, 4000 train / 1000 test), seeded here by the run's data seed
instead of the fixed 42, so every data seed is a new draw of the same distribution. It seeds and
draws from NumPy's and Python's global random state; that state is saved and restored around the
call, so generating the set changes no other random stream of the process.
"""

from __future__ import annotations

import random

import numpy as np

from ml2bench.data.dataset import DataError, Dataset

SIGNAL_LENGTH = 40  # get_dataset_args()["final_seq_length"]


def load_mnist1d(seed: int) -> Dataset:
    """MNIST-1D drawn with ``seed``: (N, 1, 40) float32 signals (one channel), labels 0-9."""
    try:
        import mnist1d  # noqa: F401 (checked here: a clear error before the cached call)
    except ImportError as err:
        raise DataError(
            "dataset 'mnist1d' needs the mnist1d package (generates the data offline): pip install 'ml2bench[mnist1d]'"
        ) from err
    from ml2bench.core.cost.cache import cached_arrays

    arrays = cached_arrays(_generate, int(seed))  # x_train, y_train, x_test, y_test
    return Dataset.from_arrays(arrays, num_classes=10, input_shape=(1, SIGNAL_LENGTH), name="mnist1d")


def _generate(seed: int) -> tuple[np.ndarray, ...]:
    """The package's generator with its published arguments and ``seed`` (global random state restored)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)

    def signals(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32).reshape(-1, 1, SIGNAL_LENGTH)

    def labels(y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.int64)

    return signals(data["x"]), labels(data["y"]), signals(data["x_test"]), labels(data["y_test"])
