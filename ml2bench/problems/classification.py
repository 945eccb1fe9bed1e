"""Shared data handling for image/vector classification problems (``mlp``, ``resnet``).

Three splits: train / validation / test. The validation split (``n_val`` samples) is drawn
without replacement from the training data by its own seeded stream (the run's data seed and
:data:`VALIDATION_STREAM`), so it never depends on the batch order or the initial network, and
training uses the first ``n_train`` of the remaining samples in their order. Everything that
chooses (targets, time to target, a method's best grid point) uses the validation metric; the test
split is only reported (docs/protocol.md). Label noise is applied to the training data before the
draw: validation labels are as noisy as the training labels (held-out training data), test
labels stay clean.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ml2bench.core.objective import FModel
from ml2bench.core.params import ConfigError, Param
from ml2bench.data import DATASET_NAMES, Dataset, load_dataset
from ml2bench.data.synthetic import SYNTHETIC_NAMES, flip_labels, make_synthetic
from ml2bench.problems.base import Problem

SYNTHETIC_DEFAULT_SIZE = 1000  # samples per split of a synthetic set when n_train / n_test are null
DEFAULT_N_VAL = 200  # validation samples: accuracy to about ±1.5 points (binomial s.e. at 0.95)
VALIDATION_STREAM = 104729  # tags the validation draw's own stream: SeedSequence([data seed, this])
LABEL_NOISE_STREAM = 7919  # the label noise of file data sets: SeedSequence([data seed, this])

DATA_PARAMS = (
    Param(
        "dataset",
        str,
        "digits",
        "data set (digits ships with scikit-learn; mnist1d is generated from the seed by the optional "
        "mnist1d package; peaks, swiss_roll, ellipses are generated from the seed, ml2bench.data.synthetic; "
        "the others need data_dir)",
        choices=DATASET_NAMES + SYNTHETIC_NAMES,
    ),
    Param("data_dir", str, None, "folder with MNIST IDX files or cifar-10-batches-py", nullable=True),
    Param(
        "n_train",
        int,
        None,
        "training samples: the first n of the training data left after the validation draw (null: all); "
        f"synthetic sets: generate n_train + n_val (null: {SYNTHETIC_DEFAULT_SIZE} + n_val)",
        low=1,
        nullable=True,
    ),
    Param(
        "n_val",
        int,
        DEFAULT_N_VAL,
        "validation samples, drawn at random from the training data (seeded by the data seed): what targets "
        "and choices use",
        low=1,
    ),
    Param(
        "n_test",
        int,
        None,
        f"use the first n test samples (null: all); synthetic sets: generate n (null: {SYNTHETIC_DEFAULT_SIZE})",
        low=1,
        nullable=True,
    ),
    Param(
        "label_noise",
        float,
        0.0,
        "fraction of training (and so validation) labels replaced by a random other class (test labels stay clean)",
        low=0.0,
        high=1.0,
    ),
)


def split_validation(x: Tensor, y: Tensor, n_val: int, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(x_train, y_train, x_val, y_val): ``n_val`` samples drawn without replacement by the stream
    SeedSequence([seed, VALIDATION_STREAM]); the others keep their order."""
    n = int(y.shape[0])
    rng = np.random.default_rng(np.random.SeedSequence([seed, VALIDATION_STREAM]))
    val = torch.zeros(n, dtype=torch.bool)
    val[torch.from_numpy(rng.choice(n, size=n_val, replace=False))] = True
    return x[~val], y[~val], x[val], y[val]


def load_classification_data(hp: dict[str, Any], seed: int) -> tuple[Dataset, Tensor, Tensor]:
    """The data set named by ``hp`` with its label noise, split into train (the returned data set's
    training part), validation (the two tensors) and test; see the module docstring."""
    n_val = hp["n_val"]
    if hp["dataset"] in SYNTHETIC_NAMES:
        data = make_synthetic(
            hp["dataset"],
            (hp["n_train"] or SYNTHETIC_DEFAULT_SIZE) + n_val,
            hp["n_test"] or SYNTHETIC_DEFAULT_SIZE,
            seed,
            hp["label_noise"],
        )
    else:
        data = load_dataset(hp["dataset"], hp["data_dir"], seed).subset(None, hp["n_test"])
        have = data.n_train
        if n_val + (hp["n_train"] or 1) > have:
            raise ConfigError(
                f"problem parameters n_train = {hp['n_train']} and n_val = {n_val}: together more than the "
                f"{have} training samples of data set {data.name!r}; allowed: n_train + n_val <= {have} "
                f"(n_train null: all but the validation samples)"
            )
        if hp["label_noise"] > 0:
            rng = np.random.default_rng(np.random.SeedSequence([seed, LABEL_NOISE_STREAM]))
            y = flip_labels(data.y_train.numpy(), hp["label_noise"], data.num_classes, rng)
            data = replace(data, y_train=torch.from_numpy(y))
    x_tr, y_tr, x_val, y_val = split_validation(data.x_train, data.y_train, n_val, seed)
    keep = slice(None) if hp["n_train"] is None else slice(0, hp["n_train"])
    return replace(data, x_train=x_tr[keep], y_train=y_tr[keep]), x_val, y_val


@dataclass
class TensorBatch:
    """Inputs and labels of one batch."""

    x: Tensor
    y: Tensor
    size: int


class ClassificationProblem(Problem):
    """Cross-entropy training; accuracy on the validation split (choices) and the test split (reported)."""

    metric_name = "accuracy"
    metric_higher_is_better = True
    default_batch_size: ClassVar[int | None] = 64
    selection_quantity: ClassVar[str] = "val_metric"

    def __init__(self, hp: dict[str, Any], *, seed: int, device: torch.device, dtype: torch.dtype) -> None:
        super().__init__(hp, seed=seed, device=device, dtype=dtype)
        data, x_val, y_val = load_classification_data(hp, seed)
        self.data = data
        self.x_train = data.x_train.to(device=device, dtype=dtype)
        self.y_train = data.y_train.to(device)
        self.x_val = x_val.to(device=device, dtype=dtype)
        self.y_val = y_val.to(device)
        self.x_test = data.x_test.to(device=device, dtype=dtype)
        self.y_test = data.y_test.to(device)

    @property
    def n_train(self) -> int:
        return self.x_train.shape[0]

    def train_batches(self, batch_size: int | None, generator: torch.Generator) -> Iterator[TensorBatch]:
        n = self.n_train
        if batch_size is None or batch_size >= n:
            yield TensorBatch(self.x_train, self.y_train, n)
            return
        perm = torch.randperm(n, generator=generator).to(self.device)
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            yield TensorBatch(self.x_train[idx], self.y_train[idx], idx.numel())

    def loss(self, f: FModel, batch: TensorBatch) -> Tensor:
        return F.cross_entropy(f(batch.x), batch.y)

    def evaluate(self, f: FModel) -> dict[str, float]:
        out = {}
        with torch.no_grad():
            for split, x, y in (("val", self.x_val, self.y_val), ("test", self.x_test, self.y_test)):
                logits = f(x)
                out[f"{split}_loss"] = float(F.cross_entropy(logits, y))
                # the fraction correct as an exact count / n (float64): a float32 mean stores 192/200
                # as 0.95999998, which misses a target of 0.96
                out[f"{split}_metric"] = int((logits.argmax(dim=1) == y).sum()) / y.numel()
        return out
