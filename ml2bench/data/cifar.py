"""CIFAR-10 loader for the official python-pickle distribution."""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ml2bench.data.dataset import DataError, Dataset

_FOLDER = "cifar-10-batches-py"
_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_BATCH = "test_batch"
_PIXELS = 3 * 32 * 32
_CIFAR_FORMAT = (
    f"expected the official CIFAR-10 python version: {_FOLDER}/"
    f"{{data_batch_1..data_batch_5, test_batch}}, each a pickled dict with "
    f"b'data' (uint8 array N x {_PIXELS}, channel-first 3x32x32) and b'labels' "
    f"(list of N ints in 0..9)"
)


def _resolve_dir(data_dir: Path) -> Path:
    """Accept either the parent folder or the ``cifar-10-batches-py`` folder itself."""
    nested = data_dir / _FOLDER
    if nested.is_dir():
        return nested
    if (data_dir / _TEST_BATCH).is_file() or (data_dir / _TRAIN_BATCHES[0]).is_file():
        return data_dir
    raise DataError(f"{nested}: directory not found; {_CIFAR_FORMAT}")


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path}: file not found; {_CIFAR_FORMAT}")
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
    except Exception as e:  # unpickling can raise almost anything on a corrupt file
        raise DataError(f"{path}: cannot unpickle ({type(e).__name__}: {e}); {_CIFAR_FORMAT}") from e
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = sorted(batch.keys(), key=repr) if isinstance(batch, dict) else type(batch).__name__
        raise DataError(f"{path}: missing b'data'/b'labels' (found {keys}); {_CIFAR_FORMAT}")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        raise DataError(f"{path}: b'data' is {data.dtype} with shape {data.shape}; {_CIFAR_FORMAT}")
    if (
        labels.ndim != 1
        or labels.shape[0] != data.shape[0]
        or (labels.size and not np.issubdtype(labels.dtype, np.integer))
    ):
        raise DataError(
            f"{path}: b'labels' has shape {labels.shape} ({labels.dtype}) but b'data' "
            f"has {data.shape[0]} rows; {_CIFAR_FORMAT}"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: labels must be in 0..9, found range {int(labels.min())}..{int(labels.max())}")
    return data, labels.astype(np.int64)


def _to_x(data: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0)


def load_cifar10(data_dir: str | os.PathLike[str]) -> Dataset:
    """Load CIFAR-10 as (N, 3, 32, 32) float32 in [0, 1].

    ``data_dir`` may contain ``cifar-10-batches-py/`` or be that folder.
    Security: pickles can execute arbitrary code when loaded, so only point
    this at files you trust (e.g. the official archive with a verified checksum).
    """
    root = _resolve_dir(Path(data_dir))
    train = [_read_batch(root / name) for name in _TRAIN_BATCHES]
    x_te, y_te = _read_batch(root / _TEST_BATCH)
    x_tr = np.concatenate([d for d, _ in train])
    y_tr = np.concatenate([l for _, l in train])
    return Dataset(
        x_train=_to_x(x_tr),
        y_train=torch.from_numpy(y_tr),
        x_test=_to_x(x_te),
        y_test=torch.from_numpy(y_te),
        num_classes=10,
        input_shape=(3, 32, 32),
        name="cifar10",
    )


def write_cifar_batch(path: str | os.PathLike[str], data: np.ndarray, labels: Sequence[int]) -> None:
    """Pickle a batch in the official layout, for tests and hand-made subsets.

    ``data`` is uint8 with shape (N, 3072) or (N, 3, 32, 32).
    """
    data = np.asarray(data)
    if data.dtype != np.uint8:
        raise ValueError(f"write_cifar_batch: data must be uint8, got {data.dtype}")
    data = data.reshape(data.shape[0], _PIXELS) if data.ndim == 4 else data
    if data.ndim != 2 or data.shape[1] != _PIXELS:
        raise ValueError(f"write_cifar_batch: data must be (N, {_PIXELS}) or (N, 3, 32, 32), got {data.shape}")
    labels = [int(v) for v in labels]
    if len(labels) != data.shape[0]:
        raise ValueError(f"write_cifar_batch: {len(labels)} labels for {data.shape[0]} images")
    batch = {b"batch_label": Path(path).name.encode(), b"data": data, b"labels": labels}
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)
