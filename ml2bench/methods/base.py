"""The method interface: one training algorithm on a hierarchy of flat-vector objectives.

Methods are driven by the runner's loop (:mod:`ml2bench.runner`), one :meth:`Method.step` per
batch, in the spirit of ``torch.optim``: the method owns the iterate ``x`` and all its state.
Single-level methods use ``hierarchy.fine`` only; multilevel and domain-decomposition methods use
the coarse objectives and the transfers as well. All evaluations go through the objectives, so
work accounting is never the method's own bookkeeping.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor

from ..hierarchy import Hierarchy
from ..objective import Batch
from ..params import ParamSpec


@dataclass
class StepResult:
    """What one step reports: the loss at the iterate it started from, and whether it stopped."""

    loss: float
    converged: bool = False
    info: dict[str, float] = field(default_factory=dict)


class Method(ABC):
    """A training algorithm; see module docstring."""

    name: ClassVar[str]
    description: ClassVar[str]
    params: ClassVar[ParamSpec]
    full_batch: ClassVar[bool] = True  # default batching when the run config does not say

    def __init__(self, hierarchy: Hierarchy, x0: Tensor, hp: dict[str, Any]) -> None:
        self.hierarchy = hierarchy
        self.hp = hp
        self.x = x0.detach().clone()

    @classmethod
    def levels_required(cls, hp: dict[str, Any]) -> int:
        """Number of levels the hierarchy must have (1 for single-level methods)."""
        return int(hp.get("levels", 1))

    @abstractmethod
    def step(self, batch: Batch) -> StepResult:
        """One iteration on ``batch``; updates ``self.x``."""

    def close(self) -> None:
        """Release resources (worker processes, process groups); the runner always calls it."""
