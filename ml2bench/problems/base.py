"""The problem interface: model per level, data, loss, metrics and transfers.

A problem is one module registered by name (see :mod:`ml2bench.problems`). Methods only see
it through :class:`~ml2bench.core.hierarchy.Hierarchy` objects built by :meth:`Problem.hierarchy`,
which is why coarse levels and transfer operators are part of the interface from the start.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ml2bench.core.cost import flops as _flops_mod
from ml2bench.core.hierarchy import Hierarchy, Transfer
from ml2bench.core.objective import Batch, FModel, Objective, WorkCounter
from ml2bench.core.params import ConfigError, ParamSpec
from ml2bench.core.registry import Registry

FLOP_PROBE_SAMPLES = 64

#: every problem by name: the built-in ones (imported by :mod:`ml2bench.problems`), entry points of
#: the group ``ml2bench.problems`` and plugin files (:func:`ml2bench.core.registry.load_plugin`)
PROBLEMS: Registry = Registry("problem", group="ml2bench.problems")
#: class decorator: ``@register`` above a :class:`Problem` subclass makes it available by its ``name``
register = PROBLEMS.register


class Problem(ABC):
    """A training problem: data + architecture family + loss + test metric."""

    name: ClassVar[str]
    description: ClassVar[str]
    params: ClassVar[ParamSpec]
    metric_name: ClassVar[str]
    metric_higher_is_better: ClassVar[bool]
    default_batch_size: ClassVar[int | None] = None  # mini-batch methods' default; None: full batch
    default_epochs: ClassVar[float] = 10.0  # budget when a config sets none
    default_eval_interval: ClassVar[float] = 1.0  # work units between evaluation points
    #: the history column every choice is made on (targets, a method's best grid point), never a
    #: test column: the training loss unless the problem holds out a validation split
    selection_quantity: ClassVar[str] = "train_loss"
    #: a small instance (hyper-parameters) that builds and trains in about a second: the contract
    #: tests, the methods' smoke runs, the quality sweep and the step benchmarks use it
    smoke_params: ClassVar[Mapping[str, Any] | None] = None

    def __init__(self, hp: dict[str, Any], *, seed: int, device: torch.device, dtype: torch.dtype) -> None:
        self.hp = hp
        self.seed = seed
        self.device = device
        self.dtype = dtype

    # --- data -------------------------------------------------------------------------
    @property
    @abstractmethod
    def n_train(self) -> int:
        """Number of training samples (or collocation points): the unit of an epoch."""

    @abstractmethod
    def train_batches(self, batch_size: int | None, generator: torch.Generator) -> Iterator[Batch]:
        """One epoch of training batches in an order drawn from ``generator``."""

    @abstractmethod
    def loss(self, f: FModel, batch: Batch) -> Tensor:
        """Scalar training loss of the network ``f`` on ``batch``."""

    @abstractmethod
    def evaluate(self, f: FModel) -> dict[str, float]:
        """Test metrics: at least ``test_loss`` and ``test_metric`` (see ``metric_name``); a problem
        with a validation split also ``val_loss`` and ``val_metric`` (the same metric on it)."""

    # --- models and levels ------------------------------------------------------------
    @abstractmethod
    def build_model(self, level: int = 0) -> nn.Module:
        """The network of ``level`` (0 finest), freshly initialised from the global RNG."""

    def max_levels(self) -> int:
        """How many levels this problem's architecture can be coarsened to (1: none)."""
        return 1

    def transfer(self, fine: nn.Module, coarse: nn.Module, level: int) -> Transfer:
        """Transfer operators between ``level`` and ``level + 1``."""
        raise ConfigError(f"problem {self.name!r} has no multilevel hierarchy")

    def hierarchy(self, levels: int, counter: WorkCounter) -> Hierarchy:
        """Objectives for levels 0..levels-1, with measured cost ratios, and their transfers."""
        if levels < 1 or levels > self.max_levels():
            raise ConfigError(
                f"problem {self.name!r} with these parameters supports levels 1..{self.max_levels()}, "
                f"got levels={levels}"
            )
        models = [self.build_model(level).to(device=self.device, dtype=self.dtype) for level in range(levels)]
        flops = [self._flops(m) for m in models]
        objectives = [
            Objective(m, self.loss, counter, self.n_train, level=l, cost_ratio=flops[l] / flops[0])
            for l, m in enumerate(models)
        ]
        transfers = [self.transfer(models[l], models[l + 1], l) for l in range(levels - 1)]
        return Hierarchy(objectives, transfers, counter)

    def _flops(self, model: nn.Module) -> float:
        """FLOPs of one forward+backward of the loss on a small probe batch (matmuls/convs,
        counted analytically per layer by :mod:`ml2bench.core.cost.flops`: no compiler stack imported).

        FLOPs are linear in the batch size, so the ratios between levels do not depend on it; a
        small probe keeps this cheap on large data sets (CIFAR-10 through every level).
        """
        probe_size = min(FLOP_PROBE_SAMPLES, self.n_train)
        batch = next(iter(self.train_batches(probe_size, torch.Generator().manual_seed(0))))
        total = float(_flops_mod.loss_flops(model, self.loss, batch))
        if total <= 0:
            raise RuntimeError(f"problem {self.name!r}: FLOP count found no work for {type(model).__name__}")
        return total
