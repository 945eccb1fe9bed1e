"""The method interface: one training algorithm on a hierarchy of flat-vector objectives.

Methods are driven by the runner's loop (:mod:`ml2bench.core.runner`), one :meth:`Method.step` per
batch, in the spirit of ``torch.optim``: the method owns the iterate ``x`` and all its state.
Single-level methods use ``hierarchy.fine`` only; multilevel and domain-decomposition methods use
the coarse objectives and the transfers as well. All evaluations go through the objectives, so
work accounting is never the method's own bookkeeping.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from ml2bench.core.hierarchy import Hierarchy
from ml2bench.core.objective import Batch
from ml2bench.core.params import Param, ParamSpec
from ml2bench.multilevel.coarse import same_batch


@dataclass
class StepResult:
    """What one step reports: the loss at the iterate it started from, and whether it stopped.

    ``converged`` is True only when a stated convergence criterion holds (``stop_reason`` names
    it, e.g. ``"grad_tol"``); a method that cannot go on for another reason (steps below
    round-off, a stalled cycle, a failed model) sets ``stop_reason`` and leaves ``converged``
    False, and the runner ends the run as ``stopped`` — never as ``ok``.
    """

    loss: float
    converged: bool = False
    info: dict[str, float] = field(default_factory=dict)
    stop_reason: str = ""

    @property
    def stops(self) -> bool:
        return self.converged or bool(self.stop_reason)


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
        # f, ∇f of the fine objective at self.x on self._batch (see fine_fg_at_iterate)
        self._batch: Any = None
        self._f = float("nan")
        self._g: Tensor | None = None
        #: the run's work-unit budget (set by the runner): a method whose step is long (a V-cycle
        #: costs up to ~20 work units on small networks) ends its inner loops once the hierarchy's
        #: counter reaches it (RMTR, MG/OPT), so it overshoots by about one evaluation, not a step
        self.work_limit = math.inf

    def out_of_work(self) -> bool:
        """True once the evaluations charged so far reach :attr:`work_limit`."""
        return self.hierarchy.counter.work_units >= self.work_limit

    def fine_fg_at_iterate(self, batch: Batch) -> tuple[float, Tensor]:
        """f and ∇f at ``self.x`` on ``batch``, evaluated (and charged) only when not already held.

        Methods that keep ``self._f``, ``self._g`` up to date with their iterate start each step
        here, so a full-batch step never pays again for the point the previous step ended at."""
        if self._g is None or not same_batch(self._batch, batch):
            self._f, self._g = self.hierarchy.fine.loss_grad(self.x, batch)
            self._batch = batch
        return self._f, self._g

    def iterate_is_finite(self) -> bool:
        """f and ∇f held for ``self.x`` are finite. A method stops with stop_reason "nonfinite"
        when not (a start where the loss overflows): there is no model to build from inf or NaN,
        and a step from it only spends evaluations (the runner records such a run as diverged)."""
        return math.isfinite(self._f) and self._g is not None and bool(torch.isfinite(self._g).all())

    @classmethod
    def levels_required(cls, hp: dict[str, Any]) -> int:
        """Number of levels the hierarchy must have (1 for single-level methods)."""
        return int(hp.get("levels", 1))

    @abstractmethod
    def step(self, batch: Batch) -> StepResult:
        """One iteration on ``batch``; updates ``self.x``."""

    def close(self) -> None:  # noqa: B027 (an optional hook: most methods hold nothing to release)
        """Release resources (worker processes, process groups); the runner always calls it."""


def vcycle_params(
    pre_smooth: int, post_smooth: int, smoother: str, coarse_steps: int = 50, coarse_rtol: float = 0.1
) -> tuple[Param, ...]:
    """The V-cycle shape and stopping rules shared by the multilevel methods (RMTR, MG/OPT);
    defaults differ per method.

    The coarsest level is solved to a relative tolerance (‖∇m_H‖ ≤ ``coarse_rtol`` ‖∇m_H(y₀)‖)
    with ``coarse_steps`` as the cap, not a fixed number of steps: a fixed small count leaves the
    smooth error of a large coarsest grid unresolved and the cycle count grows with the grid."""
    return (
        Param("levels", int, 3, "levels of the hierarchy (1: no coarse level)", low=1),
        Param("pre_smooth", int, pre_smooth, f"{smoother} iterations before the coarse correction (ν1)", low=0),
        Param("post_smooth", int, post_smooth, f"{smoother} iterations after the coarse correction (ν2)", low=0),
        Param("coarse_steps", int, coarse_steps, f"most {smoother} iterations on the coarsest level", low=1),
        Param(
            "coarse_rtol", float, coarse_rtol, "the coarsest level stops at ‖∇m_H‖ <= coarse_rtol ‖∇m_H(y0)‖", low=0.0
        ),
        Param("cycles_per_step", int, 1, "V-cycles per runner step", low=1),
        Param("grad_tol", float, 0.0, "converged (stop_reason 'grad_tol') when ‖g‖ <= grad_tol", low=0.0),
        Param(
            "grad_rtol",
            float,
            0.0,
            "converged (stop_reason 'grad_tol') when ‖g‖ <= grad_rtol ‖g0‖ (g0: the first fine gradient of the run)",
            low=0.0,
        ),
        Param(
            "stall_cycles",
            int,
            3,
            "stop (stop_reason 'stalled') after this many consecutive V-cycles that leave the iterate unchanged",
            low=1,
        ),
    )


class CycleMonitor:
    """Stopping rules of a V-cycle method: convergence by a stated criterion (absolute or
    relative gradient norm) and stall detection (``stall_cycles`` cycles in a row that leave x
    bit-for-bit unchanged: every step and coarse correction rejected, e.g. at round-off)."""

    def __init__(self, hp: dict[str, Any]) -> None:
        self.grad_tol = hp["grad_tol"]
        self.grad_rtol = hp["grad_rtol"]
        self.stall_cycles = hp["stall_cycles"]
        self.g0: float | None = None
        self.idle = 0

    def start(self, gnorm: float) -> None:
        if self.g0 is None:
            self.g0 = gnorm

    def converged(self, gnorm: float) -> bool:
        return gnorm <= self.grad_tol or (self.g0 is not None and gnorm <= self.grad_rtol * self.g0)

    def cycle_done(self, moved: bool) -> bool:
        """Record one cycle; True when the method has stalled."""
        self.idle = 0 if moved else self.idle + 1
        return self.idle >= self.stall_cycles

    def run_cycles(self, cycles: int, cycle: Callable[[], bool], gnorm: Callable[[], float]) -> str:
        """Up to ``cycles`` calls of ``cycle`` (one V-cycle; returns whether the iterate moved),
        none once converged; returns "stalled" when the stall rule fired, else ""."""
        for _ in range(cycles):
            if self.converged(gnorm()):
                break
            if self.cycle_done(cycle()):
                return "stalled"
        return ""
