"""Shared data handling for image/vector classification problems (``mlp``, ``resnet``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data import DATASET_NAMES, load_dataset
from ..objective import FModel
from ..params import Param
from .base import Problem

DATA_PARAMS = (
    Param("dataset", str, "digits", "data set (digits ships with scikit-learn; the others need data_dir)",
          choices=DATASET_NAMES),
    Param("data_dir", str, None, "folder with MNIST IDX files or cifar-10-batches-py", nullable=True),
    Param("n_train", int, None, "use the first n training samples (null: all)", low=1, nullable=True),
    Param("n_test", int, None, "use the first n test samples (null: all)", low=1, nullable=True),
)


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
        data = load_dataset(hp["dataset"], hp["data_dir"], seed).subset(hp["n_train"], hp["n_test"])
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
            idx = perm[start:start + batch_size]
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
