"""Shared data handling for image/vector classification problems (``mlp``, ``resnet``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ml2bench.core.objective import FModel
from ml2bench.core.params import Param
from ml2bench.data import DATASET_NAMES, load_dataset
from ml2bench.data.synthetic import SYNTHETIC_NAMES, flip_labels, make_synthetic
from ml2bench.problems.base import Problem

SYNTHETIC_DEFAULT_SIZE = 1000  # samples per split of a synthetic set when n_train / n_test are null

DATA_PARAMS = (
    Param(
        "dataset",
        str,
        "digits",
        "data set (digits ships with scikit-learn; peaks, swiss_roll, ellipses are "
        "generated from the seed, ml2bench.data.synthetic; the others need data_dir)",
        choices=DATASET_NAMES + SYNTHETIC_NAMES,
    ),
    Param("data_dir", str, None, "folder with MNIST IDX files or cifar-10-batches-py", nullable=True),
    Param(
        "n_train",
        int,
        None,
        f"use the first n training samples (null: all); synthetic sets: generate n (null: {SYNTHETIC_DEFAULT_SIZE})",
        low=1,
        nullable=True,
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
        "fraction of training labels replaced by a random other class (test labels stay clean)",
        low=0.0,
        high=1.0,
    ),
)


def load_classification_data(hp: dict[str, Any], seed: int):
    """The data set named by ``hp`` (generated for synthetic sets), with its label noise applied."""
    if hp["dataset"] in SYNTHETIC_NAMES:
        return make_synthetic(
            hp["dataset"],
            hp["n_train"] or SYNTHETIC_DEFAULT_SIZE,
            hp["n_test"] or SYNTHETIC_DEFAULT_SIZE,
            seed,
            hp["label_noise"],
        )
    data = load_dataset(hp["dataset"], hp["data_dir"], seed).subset(hp["n_train"], hp["n_test"])
    if hp["label_noise"] > 0:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 7919]))  # own stream: the split is unchanged
        y = flip_labels(data.y_train.numpy(), hp["label_noise"], data.num_classes, rng)
        data = replace(data, y_train=torch.from_numpy(y))
    return data


@dataclass
class TensorBatch:
    """Inputs and labels of one batch."""

    x: Tensor
    y: Tensor
    size: int


class ClassificationProblem(Problem):
    """Cross-entropy training, accuracy as the test metric."""

    metric_name = "accuracy"
    metric_higher_is_better = True
    default_batch_size: ClassVar[int | None] = 64

    def __init__(self, hp: dict[str, Any], *, seed: int, device: torch.device, dtype: torch.dtype) -> None:
        super().__init__(hp, seed=seed, device=device, dtype=dtype)
        data = load_classification_data(hp, seed)
        self.data = data
        self.x_train = data.x_train.to(device=device, dtype=dtype)
        self.y_train = data.y_train.to(device)
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
        with torch.no_grad():
            logits = f(self.x_test)
            return {
                "test_loss": float(F.cross_entropy(logits, self.y_test)),
                "test_metric": float((logits.argmax(dim=1) == self.y_test).float().mean()),
            }
