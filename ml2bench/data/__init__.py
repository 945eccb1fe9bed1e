"""Dataset loaders: bundled digits, MNIST-1D generated offline (optional package ``mnist1d``),
plus MNIST/Fashion-MNIST/CIFAR-10 from local files.

ml2bench never downloads data; the file-based loaders need a ``data_dir``.
"""

from __future__ import annotations

from ml2bench.data.cifar import load_cifar10, write_cifar_batch
from ml2bench.data.dataset import DataError, Dataset
from ml2bench.data.digits import load_digits
from ml2bench.data.idx import load_mnist, read_idx, write_idx
from ml2bench.data.mnist1d import load_mnist1d

DATASET_NAMES: tuple[str, ...] = ("digits", "mnist1d", "mnist", "fashion_mnist", "cifar10")

__all__ = [
    "DATASET_NAMES",
    "DataError",
    "Dataset",
    "load_cifar10",
    "load_dataset",
    "load_digits",
    "load_mnist",
    "load_mnist1d",
    "read_idx",
    "write_cifar_batch",
    "write_idx",
]


def load_dataset(name: str, data_dir: str | None, seed: int) -> Dataset:
    """Load a dataset by name; one entry point so configs can name datasets as strings.

    ``seed`` only affects datasets without a fixed official split (digits) and generated ones (mnist1d).
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; allowed names: {', '.join(DATASET_NAMES)}")
    if name == "digits":
        return load_digits(seed)
    if name == "mnist1d":
        return load_mnist1d(seed)
    if data_dir is None:
        raise DataError(
            f"dataset {name!r} needs data_dir: ml2bench cannot download data, so "
            f"download it yourself and pass the folder containing the files"
        )
    if name == "cifar10":
        return load_cifar10(data_dir)
    return load_mnist(data_dir, name=name)
