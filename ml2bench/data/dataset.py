"""Container for a train/test split plus the error type used by all loaders."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ml2bench.core.params import ConfigError


class DataError(ValueError):
    """A data file is missing or malformed.

    Subclasses ValueError so callers that only know "bad input" still catch it;
    the message always names the offending path and the expected format so the
    user can fix the file without reading the loader source.
    """


@dataclass(frozen=True)
class Dataset:
    """An in-memory classification dataset.

    Frozen so a loaded dataset can be shared between runs without one run
    silently mutating what another sees. ``input_shape`` is per sample, so
    models can be built without peeking at the tensors.
    """

    x_train: torch.Tensor  # float32, (N, *input_shape)
    y_train: torch.Tensor  # int64, (N,)
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    input_shape: tuple[int, ...]
    name: str

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x = getattr(self, f"x_{split}")
            y = getattr(self, f"y_{split}")
            if x.dtype != torch.float32 or y.dtype != torch.int64:
                raise TypeError(
                    f"{self.name}: x_{split} must be float32 and y_{split} int64, got {x.dtype} and {y.dtype}"
                )
            if x.shape[0] != y.shape[0]:
                raise ValueError(f"{self.name}: x_{split} has {x.shape[0]} samples but y_{split} has {y.shape[0]}")
            if tuple(x.shape[1:]) != tuple(self.input_shape):
                raise ValueError(
                    f"{self.name}: x_{split} per-sample shape {tuple(x.shape[1:])} "
                    f"!= input_shape {tuple(self.input_shape)}"
                )

    @classmethod
    def from_arrays(
        cls, arrays: tuple[np.ndarray, ...], *, num_classes: int, input_shape: tuple[int, ...], name: str
    ) -> Dataset:
        """From numpy arrays ``(x_train, y_train, x_test, y_test)`` (as a loader's cache returns them)."""
        x_train, y_train, x_test, y_test = (torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)
        return cls(x_train, y_train, x_test, y_test, num_classes=num_classes, input_shape=input_shape, name=name)

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> Dataset:
        """Keep the first ``n_train`` / ``n_test`` samples (None keeps all).

        For quick smoke runs; taking a prefix keeps it deterministic.
        """
        for label, n, have in (("n_train", n_train, len(self.y_train)), ("n_test", n_test, len(self.y_test))):
            if n is not None and n < 0:
                raise ValueError(f"{label} must be >= 0 or None, got {n}")
            if n is not None and n > have:  # never clip silently: the summary records the requested n
                raise ConfigError(
                    f"problem parameter '{label}' = {n} exceeds the {have} samples of data set "
                    f"{self.name!r}; allowed: 1..{have} or null (all)"
                )
        tr = slice(None) if n_train is None else slice(0, n_train)
        te = slice(None) if n_test is None else slice(0, n_test)
        return Dataset(
            x_train=self.x_train[tr],
            y_train=self.y_train[tr],
            x_test=self.x_test[te],
            y_test=self.y_test[te],
            num_classes=self.num_classes,
            input_shape=self.input_shape,
            name=self.name,
        )
