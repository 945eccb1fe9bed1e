"""The method interface: one training algorithm on a hierarchy of flat-vector objectives.

Methods are driven by the runner's loop (:mod:`ml2bench.core.runner`), one :meth:`Method.step` per
batch, in the spirit of ``torch.optim``: the method owns the iterate ``x`` and all its state.
Single-level methods use ``hierarchy.fine`` only; multilevel and domain-decomposition methods use
the coarse objectives and the transfers as well. All evaluations go through the objectives, so
work accounting is never the method's own bookkeeping.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from ml2bench.core.hierarchy import Hierarchy
from ml2bench.core.objective import Batch, same_batch
from ml2bench.core.params import Param, ParamSpec
from ml2bench.core.registry import Registry
from ml2bench.core.stop import StopReason

#: every method by name: the built-in ones (imported by :mod:`ml2bench.methods`), entry points of
#: the group ``ml2bench.methods`` and plugin files (:func:`ml2bench.core.registry.load_plugin`)
METHODS: Registry = Registry("method", group="ml2bench.methods")
#: class decorator: ``@register`` above a :class:`Method` subclass makes it available by its ``name``
register = METHODS.register


@dataclass
class StepResult:
    """What one step reports: the loss at the iterate it started from, and whether it stopped.

    ``converged`` is True only when a stated convergence criterion holds, and ``stop_reason``
    names it (:attr:`StopReason.GRAD_TOL`); a method that cannot go on for another reason (steps
    below round-off, a stalled cycle) sets ``stop_reason`` to that :class:`StopReason` and leaves
    ``converged`` False, and the runner ends the run as ``stopped`` — never as ``ok``. ``""``: the
    method goes on. A string is accepted and checked against :class:`StopReason` (ValueError
    naming the allowed reasons), as is ``converged`` against the reason.
    """

    loss: float
    converged: bool = False
    info: dict[str, float] = field(default_factory=dict)
    stop_reason: StopReason | str = ""

    def __post_init__(self) -> None:
        if self.stop_reason:
            self.stop_reason = StopReason.parse(self.stop_reason)
        if self.converged != bool(self.stop_reason and self.stop_reason.converged):
            criteria = ", ".join(m.value for m in StopReason if m.converged)
            raise ValueError(
                f"StepResult: converged={self.converged} with stop_reason {str(self.stop_reason)!r}; a convergence "
                f"is reported with its criterion as stop_reason ({criteria}) and a criterion only with converged=True"
            )

    @property
    def stops(self) -> bool:
        return self.converged or bool(self.stop_reason)


@dataclass(frozen=True)
class SmokeRun:
    """A small run on which a method learns: the registered ``problem`` at its smoke size
    (:attr:`Problem.smoke_params <ml2bench.problems.base.Problem.smoke_params>`), the method's
    hyper-parameters ``params``, ``budget`` (keys of :data:`ml2bench.core.config.BUDGET`), per seed.

    The contract tests (``tests/contract/``) require every one to clear the floor that means
    "learned" (:func:`ml2bench.sweep.quality.floor_failures`), and the quality sweep pins their final
    numbers (:mod:`ml2bench.sweep.quality`)."""

    problem: str
    budget: Mapping[str, Any]
    params: Mapping[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1)


class Method(ABC):
    """A training algorithm; see module docstring.

    A subclass declares ``name``, ``description``, ``params`` (its hyper-parameters), ``smoke``
    (at least one :class:`SmokeRun`) and ``state_attrs``, and registers with ``@register``; the
    contract tests then run it on every registered problem it fits (``tests/contract/``).

    Every constructor receives its hyper-parameters validated, with the declared defaults filled
    in (:meth:`ParamSpec.validate`): the runner passes a resolved config, but a method built from
    Python with a partial dict (``SGD(h, x0, {"lr": 0.1})``) gets the same, where the subclass's
    ``__init__`` reads ``hp[...]`` before or after ``super().__init__``.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    params: ClassVar[ParamSpec]
    full_batch: ClassVar[bool] = True  # default batching when the run config does not say
    #: attributes that carry the method's state from one step to the next besides the iterate and
    #: the f, ∇f held for it (radii, quasi-Newton memories, monitors, moments): what
    #: :meth:`state_dict` saves and :meth:`load_state_dict` restores
    state_attrs: ClassVar[tuple[str, ...]] = ()
    #: small runs on which the method learns (see SmokeRun); the contract tests require one
    smoke: ClassVar[tuple[SmokeRun, ...]] = ()
    #: more hyper-parameter points (label -> params) whose invariants the contract tests check on
    #: every problem, besides the defaults: the code paths a method's options switch between
    smoke_variants: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def validated_init(self, hierarchy: Hierarchy, x0: Tensor, hp: dict[str, Any] | None = None, *a, **k):
            init(self, hierarchy, x0, self.params.validate(hp, f"method {self.name!r}"), *a, **k)

        cls.__init__ = validated_init

    def __init__(self, hierarchy: Hierarchy, x0: Tensor, hp: dict[str, Any] | None = None) -> None:
        self.hierarchy = hierarchy
        self.hp = self.params.validate(hp, f"method {self.name!r}")
        self.x = x0.detach().clone()
        # f, ∇f of the fine objective at self.x on self._batch (see fine_fg_at_iterate)
        self._batch: Any = None
        self._f = float("nan")
        self._g: Tensor | None = None
        #: called at :meth:`checkpoint` as ``observer(method, coarse_next)`` (set by the runner: it
        #: may take an evaluation point there)
        self.observer: Callable[[Method, bool], None] | None = None

    def checkpoint(self, x: Tensor, f: float, g: Tensor, coarse_next: bool = False) -> None:
        """A fine-level iterate inside a step at which the method could stop (after a smoothing
        iteration or a coarse correction of a cycle), with f and ∇f on the step's batch;
        ``coarse_next``: a coarse correction follows (a long phase that leaves the iterate alone).

        It becomes the method's iterate, so a step cut short by the work budget
        (:class:`~ml2bench.core.objective.BudgetExhausted`) ends the run here, not where the step
        began; and the runner may take an evaluation point here (uncharged and untimed, like every
        evaluation point), so work-to-target is resolved inside a long step."""
        self.x, self._f, self._g = x, f, g
        if self.observer is not None:
            self.observer(self, coarse_next)

    def fine_fg_at_iterate(self, batch: Batch) -> tuple[float, Tensor]:
        """f and ∇f at ``self.x`` on ``batch``, evaluated (and charged) only when not already held.

        Methods that keep ``self._f``, ``self._g`` up to date with their iterate start each step
        here, so a full-batch step never pays again for the point the previous step ended at."""
        if self._g is None or not holds_batch(self._batch, batch):
            self._f, self._g = self.hierarchy.fine.loss_grad(self.x, batch)
        self._batch = batch
        return self._f, self._g

    # --- checkpoints ------------------------------------------------------------------------
    def _held(self) -> tuple[Any, float, Tensor | None]:
        """(batch, f, ∇f) held for ``self.x`` (∇f None when nothing is held)."""
        return self._batch, self._f, self._g

    def _hold(self, batch: Any, f: float, g: Tensor | None) -> None:
        self._batch, self._f, self._g = batch, f, g

    def set_iterate(self, x: Tensor) -> None:
        """Continue from ``x`` (changed from outside, e.g. a user's ``load_state_dict`` on the model):
        nothing held for the old iterate is used."""
        self.x = x.detach().clone()
        self._hold(None, math.nan, None)

    def state_dict(self) -> dict[str, Any]:
        """The iterate, the f, ∇f held for it (with a fingerprint of their batch) and
        :attr:`state_attrs`, as tensors, numbers, lists and dicts (``torch.optim``'s format; no
        strings, which its ``load_state_dict`` would not keep). k steps, ``state_dict``,
        :meth:`load_state_dict` into a new method, m steps: the iterates and evaluations of k + m."""
        batch, f, g = self._held()
        state = {
            "x": self.x.detach().clone(),
            "f": f,
            "g": None if g is None else g.detach().clone(),
            "batch": None if g is None else batch_fingerprint(batch),
        }
        for name in self.state_attrs:
            state[name] = pack_state(getattr(self, name))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output. The f, ∇f saved with it are reused by the next step
        when its batch has the saved batch's content (fingerprint), else evaluated again."""
        self.x = state["x"].detach().to(self.x).clone()
        g = state["g"]
        self._hold(
            BatchFingerprint(state["batch"]), float(state["f"]), None if g is None else g.detach().to(self.x).clone()
        )
        for name in self.state_attrs:
            setattr(self, name, unpack_state(getattr(self, name), state[name]))

    def iterate_is_finite(self) -> bool:
        """f and ∇f held for ``self.x`` are finite. A method stops with stop_reason "nonfinite"
        when not (a start where the loss overflows): there is no model to build from inf or NaN,
        and a step from it only spends evaluations (the runner records such a run as diverged)."""
        return math.isfinite(self._f) and self._g is not None and bool(torch.isfinite(self._g).all())

    @classmethod
    def levels_required(cls, hp: dict[str, Any]) -> int:
        """Number of levels the hierarchy must have (1 for single-level methods)."""
        return int(hp.get("levels", 1))

    @classmethod
    def uses_full_batch(cls, hp: dict[str, Any]) -> bool:
        """Whether a run without ``batch_size`` gives the method the full batch (else the problem's
        default mini-batch): :attr:`full_batch`, unless a hyper-parameter chooses (MG/OPT's ``batching``)."""
        return cls.full_batch

    @classmethod
    def uses_hvp(cls, hp: dict[str, Any]) -> bool:
        """Whether the method evaluates Hessian-vector products with ``hp``: the runner then measures
        their cost before training (:meth:`~ml2bench.core.hierarchy.Hierarchy.measure_hvp_costs`)."""
        return False

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
            "stop (stop_reason 'stalled') after this many consecutive V-cycles on the full batch without "
            "progress (the iterate unchanged; RMTR: and no trust radius cut above round-off)",
            low=1,
        ),
    )


class CycleMonitor:
    """Stopping rules of a V-cycle method: convergence by a stated criterion (absolute or
    relative gradient norm) and stall detection (``stall_cycles`` cycles in a row *on the full
    batch* that leave x bit-for-bit unchanged: every step and coarse correction rejected, e.g. at
    round-off). A cycle on a sampled batch never counts: its steps are rejected on that sample's
    loss, which says nothing about f at x (the next batch's may accept them), so it resets the count."""

    def __init__(self, hp: dict[str, Any]) -> None:
        self.grad_tol = hp["grad_tol"]
        self.grad_rtol = hp["grad_rtol"]
        self.stall_cycles = hp["stall_cycles"]
        self.g0: float | None = None
        self.idle = 0

    def start(self, gnorm: float) -> None:
        if self.g0 is None:
            self.g0 = gnorm

    def state_dict(self) -> dict[str, Any]:
        return {"g0": self.g0, "idle": self.idle}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.g0, self.idle = state["g0"], int(state["idle"])

    def converged(self, gnorm: float) -> bool:
        return gnorm <= self.grad_tol or (self.g0 is not None and gnorm <= self.grad_rtol * self.g0)

    def cycle_done(self, moved: bool, full_batch: bool = True) -> bool:
        """Record one cycle (``moved``: it made progress; on the full batch or a sample); True when
        the method has stalled."""
        self.idle = self.idle + 1 if full_batch and not moved else 0
        return self.idle >= self.stall_cycles

    def run_cycles(
        self, cycles: int, cycle: Callable[[], bool], gnorm: Callable[[], float], full_batch: bool = True
    ) -> StopReason | str:
        """Up to ``cycles`` calls of ``cycle`` (one V-cycle; returns whether it made progress: moved
        the iterate, or for RMTR also cut a trust radius) on the full batch or, ``full_batch=False``,
        a sample; none once ``gnorm()`` meets the criterion. Returns :attr:`StopReason.GRAD_TOL` when
        it does after the cycles on the full batch (a small sampled gradient is no convergence), else
        :attr:`StopReason.STALLED` when the stall rule fired, else ""."""
        stalled = False
        for _ in range(cycles):
            if self.converged(gnorm()):
                break
            if self.cycle_done(cycle(), full_batch):
                stalled = True
                break
        if full_batch and self.converged(gnorm()):
            return StopReason.GRAD_TOL
        return StopReason.STALLED if stalled else ""


# --- checkpoint helpers ----------------------------------------------------------------------------
def pack_state(value: Any) -> Any:
    """``value`` as tensors (copies), numbers, lists and dicts; objects with a ``state_dict`` give theirs."""
    if hasattr(value, "state_dict"):
        return value.state_dict()
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, (list, tuple)):
        return [pack_state(v) for v in value]
    if isinstance(value, dict):
        return {k: pack_state(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float)):
        return value
    raise TypeError(f"cannot save method state of type {type(value).__name__}")


def unpack_state(current: Any, saved: Any) -> Any:
    """The value to hold after loading ``saved`` into ``current`` (objects load in place; tensors
    take ``current``'s dtype and device)."""
    if hasattr(current, "load_state_dict"):
        current.load_state_dict(saved)
        return current
    if isinstance(current, list):
        if len(current) != len(saved):
            raise ValueError(f"saved method state has {len(saved)} entries where this method has {len(current)}")
        return [unpack_state(c, s) for c, s in zip(current, saved)]
    if isinstance(current, dict):
        return {k: unpack_state(current.get(k), v) for k, v in saved.items()}
    if isinstance(saved, Tensor):
        return saved.detach().to(current).clone() if isinstance(current, Tensor) else saved.detach().clone()
    return saved


def batch_fingerprint(batch: Any) -> int | None:
    """A hash of a batch's content (its tensors' bytes, shapes and dtypes, and its scalar fields),
    or None for a batch that is not plain data (e.g. a closure): what lets a resumed method know
    that the next batch is the one its held f, ∇f were computed on."""
    digest = hashlib.blake2b(digest_size=8)

    def feed(obj: Any) -> bool:
        if isinstance(obj, Tensor):
            t = obj.detach().cpu().contiguous()
            digest.update(repr((tuple(t.shape), str(t.dtype))).encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
            return True
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return all(feed(f.name) and feed(getattr(obj, f.name)) for f in dataclasses.fields(obj))
        if isinstance(obj, dict):
            return all(feed(k) and feed(obj[k]) for k in sorted(obj))
        if isinstance(obj, (list, tuple)):
            return all(feed(v) for v in obj)
        if obj is None or isinstance(obj, (bool, int, float, str)):
            digest.update(repr(obj).encode())
            return True
        return False

    return int.from_bytes(digest.digest(), "little") if feed(batch) else None


@dataclass(frozen=True)
class BatchFingerprint:
    """Stands for the batch a loaded state's f, ∇f belong to (see :func:`batch_fingerprint`)."""

    value: int | None


def holds_batch(held: Any, batch: Any) -> bool:
    """``batch`` is the batch of the held f, ∇f: the same objects, or after a load the same content."""
    if isinstance(held, BatchFingerprint):
        return held.value is not None and held.value == batch_fingerprint(batch)
    return same_batch(held, batch)
