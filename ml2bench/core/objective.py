"""The loss of one model on one level as a function of a flat parameter vector.

Every method in ml2bench, single- or multilevel, optimises a flat vector ``x`` (a 1-D tensor).
:class:`Objective` evaluates the problem's loss at ``x`` on a batch by swapping views of ``x``
into the module for one call (as ``torch.func.functional_call`` does), so the optimiser owns a
plain vector, autograd flows to it, and several levels can be evaluated side by side. Each
evaluation is charged to a shared :class:`WorkCounter`, which is the single place where gradient
evaluations and fine-level-equivalent work are counted.

Loss+gradient evaluations (the bulk of all work) take a faster path: the module's parameters are
bound once as views of one flat buffer, their ``.grad`` as views of one flat gradient buffer, so
an evaluation copies ``x`` in, runs forward and backward on the module as it is, and the gradient
is accumulated in place into the flat buffer (no per-call views, swaps or concatenation: the
harness's overhead over a plain PyTorch loop, docs/performance.md). The binding is in place
(``p.data``, ``p.grad``): the module keeps its own ``Parameter`` objects, so weights tied between
modules stay tied and anything that holds a parameter (a ``torch.optim`` optimiser created
before, an EMA, DDP) keeps acting on the parameters the objective evaluates. A tied parameter is
one entry of ``x`` (``named_parameters()`` lists it once), as in
``torch.func.functional_call(..., tie_weights=True)``. The same static buffers let
:class:`~ml2bench.core.cost.graphs.StaticEvaluation` capture an evaluation as a CUDA graph and replay it
(``graphs`` = ``"cuda"``); ``"static"`` runs the same static-buffer code eagerly (CPU tests).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn


class Batch(Protocol):
    """What a problem hands to its loss: anything with the number of samples it holds."""

    size: int


FModel = Callable[[Tensor], Tensor]
LossFn = Callable[[FModel, Any], Tensor]


BUDGET_RTOL = 1e-9  # round-off of summed batch fractions and cost ratios, not a tolerance on the budget


class BudgetExhausted(BaseException):  # noqa: N818 (a signal, like KeyboardInterrupt, not an error)
    """Raised by :meth:`WorkCounter.charge` *before* an evaluation that would take a counted budget
    past its limit: nothing beyond the budget is ever evaluated or charged.

    A ``BaseException`` like ``KeyboardInterrupt``: it is a signal to the runner, which ends the
    run as ``budget_exhausted`` at the method's iterate (:attr:`Method.x`, which cycle methods keep
    at their last safe point, :meth:`Method.checkpoint`); no method's error handling
    (``except Exception``) may swallow it.
    """

    def __init__(self, name: str, value: float, limit: float) -> None:
        super().__init__(f"{name} budget {limit:g} reached ({value:.6g} charged; the next evaluation would exceed it)")
        self.name = name


@dataclass
class WorkCounter:
    """Counts evaluations in units of one full-batch fine-level gradient evaluation.

    ``grad_evals`` adds ``batch_size / n_train`` per evaluation on any level (function-only
    evaluations are charged like gradient evaluations: conservative, and what line searches
    report). ``work_units`` weights each evaluation by its level's measured cost ratio
    (FLOPs of forward+backward relative to the finest level), so a coarse step is not free.
    ``work_units_parallel`` is the same count on the critical path of a parallel execution: equal
    to ``work_units`` except for phases of concurrent branches (the subdomains of additive
    Schwarz), of which it adds only the longest branch (:meth:`concurrent_phase`).

    ``limits`` (counter name -> budget, set by the runner from the run's ``grad_evals`` /
    ``work_units`` budget): :meth:`charge` raises :class:`BudgetExhausted` instead of charging an
    evaluation that would exceed one, so no method can overshoot a counted budget.
    """

    grad_evals: float = 0.0
    work_units: float = 0.0
    work_units_parallel: float = 0.0
    by_level: dict[int, float] = field(default_factory=dict)
    limits: dict[str, float] = field(default_factory=dict)

    def charge(self, level: int, batch_fraction: float, cost_ratio: float) -> None:
        work = batch_fraction * cost_ratio
        if self.limits:
            self._check("grad_evals", batch_fraction)
            self._check("work_units", work)
        self.grad_evals += batch_fraction
        self.work_units += work
        self.work_units_parallel += work
        self.by_level[level] = self.by_level.get(level, 0.0) + batch_fraction

    def _check(self, name: str, more: float) -> None:
        limit = self.limits.get(name)
        if limit is not None and getattr(self, name) + more > limit * (1 + BUDGET_RTOL):
            raise BudgetExhausted(name, getattr(self, name), limit)

    def state_dict(self) -> dict[str, Any]:
        return {
            "grad_evals": self.grad_evals,
            "work_units": self.work_units,
            "work_units_parallel": self.work_units_parallel,
            "by_level": dict(self.by_level),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """In place: every objective holding this counter sees the loaded values."""
        self.grad_evals, self.work_units = float(state["grad_evals"]), float(state["work_units"])
        self.work_units_parallel = float(state["work_units_parallel"])
        self.by_level.clear()
        self.by_level.update({int(k): float(v) for k, v in state["by_level"].items()})

    def add_remote(self, level: int, grad_evals: float, work_units: float) -> None:
        """Add work charged on other ranks of a parallel run (the same bookkeeping as :meth:`charge`,
        unchecked: every rank then holds the total)."""
        self.grad_evals += grad_evals
        self.work_units += work_units
        self.work_units_parallel += work_units
        self.by_level[level] = self.by_level.get(level, 0.0) + grad_evals

    def concurrent_phase(self, start: float, branches: list[float]) -> None:
        """Charge the parallel count for a phase of concurrent branches that began when it was
        ``start``: the longest branch only (the serial counts hold every branch's work, charged as
        they ran). ``branches``: the work units of each branch, all ranks included."""
        self.work_units_parallel = start + max(branches, default=0.0)

    @contextlib.contextmanager
    def unlimited(self) -> Iterator[None]:
        """No limit checks inside (the local phase of a multi-rank Schwarz run, where each rank
        holds only part of the work until the all-reduce: checking there would let ranks stop at
        different points; the next evaluation after it is checked on the total)."""
        saved, self.limits = self.limits, {}
        try:
            yield
        finally:
            self.limits = saved


class Objective:
    """f_l(x) = problem loss of ``model`` with parameters ``x`` on a batch; counted."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        counter: WorkCounter,
        n_train: int,
        level: int = 0,
        cost_ratio: float = 1.0,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.counter = counter
        self.n_train = n_train
        self.level = level
        self.cost_ratio = cost_ratio
        named = [(n, p) for n, p in model.named_parameters()]  # a tied parameter once, by its first name
        self.names = [n for n, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.numels = [p.numel() for _, p in named]
        # where each parameter lives, resolved once: swapping views into these slots is what
        # torch.func.functional_call does, without re-walking the module tree on every call
        # (measured: that walk was a third of an SGD step's overhead on small networks)
        self._slots = [self._slot(model, n) for n in self.names]
        # every slot that holds each parameter (several for a tied one): fmodel swaps them all
        owners: dict[int, list[tuple[nn.Module, str]]] = {id(p): [] for _, p in named}
        for name, p in model.named_parameters(remove_duplicate=False):
            owners[id(p)].append(self._slot(model, name))
        self._owners = [owners[id(p)] for _, p in named]
        self._flat: Tensor | None = None  # parameter buffer the module's parameters view
        self._flat_grad: Tensor | None = None  # gradient buffer their .grad views
        self._params: list[nn.Parameter] = []  # the module's parameters, bound in place
        self._ptrs: list[int] = []  # where each bound parameter's data lives in the flat buffer
        self._grads: list[Tensor] = []  # their .grad views of the flat gradient buffer
        #: "off": eager; "static": static input buffers, eager (CPU path of the graph code);
        #: "cuda": captured once per batch shape as CUDA graphs and replayed (see ml2bench.core.cost.graphs)
        self.graphs = "off"
        self._static: dict[tuple, Any] = {}
        #: operations of one Hessian-vector product / one loss+gradient (:meth:`measure_hvp_cost`)
        self.hvp_ratio: float | None = None

    @property
    def n(self) -> int:
        """Number of parameters (length of the flat vector)."""
        return sum(self.numels)

    def initial_x(self) -> Tensor:
        """The module's current parameters as one flat, detached vector (a copy)."""
        return torch.cat([module._parameters[attr].detach().reshape(-1) for module, attr in self._slots]).clone()

    def unflatten(self, x: Tensor) -> dict[str, Tensor]:
        return {n: t.view(s) for n, t, s in zip(self.names, torch.split(x, self.numels), self.shapes)}

    @staticmethod
    def _slot(model: nn.Module, name: str) -> tuple[nn.Module, str]:
        owner, _, attr = name.rpartition(".")
        return (model.get_submodule(owner) if owner else model), attr

    def fmodel(self, x: Tensor) -> FModel:
        """The network as a function of its input, with parameters ``x`` (views of it).

        Like ``torch.func.functional_call``: the module's parameters are replaced by the views for
        the duration of one forward call and restored afterwards, so autograd flows to ``x``.
        Not for concurrent use of one objective from several threads.
        """
        slots = self._view_slots(x)

        def f(inp: Tensor) -> Tensor:
            with self._swapped(slots):
                return self.model(inp)

        return f

    def parameters_as(self, x: Tensor) -> contextlib.AbstractContextManager[nn.Module]:
        """``with objective.parameters_as(x) as model:`` the module itself computes with views of
        ``x`` as its parameters (autograd flows to ``x``), e.g. for a loss that takes the module."""
        return self._swapped(self._view_slots(x))

    def _view_slots(self, x: Tensor) -> list[tuple[tuple[nn.Module, str], Tensor]]:
        views = [t.view(s) for t, s in zip(torch.split(x, self.numels), self.shapes)]
        return [(slot, view) for owners, view in zip(self._owners, views) for slot in owners]

    @contextlib.contextmanager
    def _swapped(self, slots: list[tuple[tuple[nn.Module, str], Tensor]]) -> Iterator[nn.Module]:
        saved = [module._parameters[attr] for (module, attr), _ in slots]
        try:
            for (module, attr), view in slots:
                module._parameters[attr] = view
            yield self.model
        finally:
            for ((module, attr), _), param in zip(slots, saved):
                module._parameters[attr] = param

    def __getstate__(self) -> dict[str, Any]:
        """A copy (pickle for Schwarz workers, deepcopy) rebinds on first use: pickling does not
        keep the parameters as views of ``_flat``, so a copied binding would load ``x`` into a
        buffer the module no longer reads. Captured graphs are per process as well."""
        state = self.__dict__.copy()
        state.update(_flat=None, _flat_grad=None, _params=[], _ptrs=[], _grads=[], _static={})
        return state

    # --- the flat-buffer path -------------------------------------------------------------
    def _bind(self, check_all: bool = False) -> None:
        """Make the module's parameters views of one flat buffer (and their grads of another), in
        place: ``p.data`` and ``p.grad`` are replaced, the ``Parameter`` objects are kept.

        Re-done when something else rebound the module: another Objective on the same model (which
        moves every parameter, so the first one tells), a new ``Parameter`` in a slot, or, with
        ``check_all`` (:meth:`bind`), a ``p.data = ...`` on any parameter from outside. ``.grad``
        views dropped by ``zero_grad()`` are re-attached without touching the values (the first
        parameter's ``.grad`` tells, as for :meth:`_check_grads_in_place`). The per-evaluation
        check is kept to identity tests and one pointer: it runs at every evaluation (issue 14's
        overhead budget)."""
        params = [module._parameters[attr] for module, attr in self._slots]
        if self._flat is not None and (not params or self._still_bound(params, check_all)):
            if params and params[0].grad is not self._grads[0]:  # zero_grad() dropped the views
                for p, g in zip(params, self._grads):
                    p.grad = g
            return
        flat = torch.cat([p.detach().reshape(-1) for p in params]) if params else torch.zeros(0)
        grad = torch.zeros_like(flat)
        views = [t.view(s) for t, s in zip(torch.split(flat, self.numels), self.shapes)]
        self._grads = [g.view(s) for g, s in zip(torch.split(grad, self.numels), self.shapes)]
        with torch.no_grad():
            for p, view, g in zip(params, views, self._grads):
                p.data = view
                p.grad = g
        self._params = params
        self._ptrs = [p.data_ptr() for p in params]
        self._flat, self._flat_grad = flat, grad
        self._static.clear()

    def _still_bound(self, params: list[nn.Parameter], check_all: bool) -> bool:
        if not all(map(operator.is_, params, self._params)):
            return False
        if check_all:
            return all(map(operator.eq, map(Tensor.data_ptr, params), self._ptrs))
        return params[0].data_ptr() == self._ptrs[0]

    def bind(self) -> None:
        """Bind the module's parameters to the flat buffers now, checking every parameter for a
        change from outside (a user's ``p.data = ...``); evaluations check only cheaply."""
        self._bind(check_all=True)

    def load(self, x: Tensor) -> None:
        """Set the module's parameters to ``x`` (not an evaluation: nothing is charged)."""
        self._load(x)

    def _load(self, x: Tensor) -> None:
        """Put ``x`` into the parameter buffer (the module then computes f at ``x``)."""
        self._bind()
        assert self._flat is not None
        if x.data_ptr() != self._flat.data_ptr():
            with torch.no_grad():
                self._flat.copy_(x.detach())

    def _value_and_grad_in_place(self, batch: Batch) -> Tensor:
        """Loss at the loaded parameters; its gradient accumulated into the zeroed flat buffer."""
        assert self._flat_grad is not None
        self._flat_grad.zero_()
        with torch.enable_grad():
            value = self.loss_fn(self.model, batch)
            torch.autograd.backward(value, inputs=self._params)
        return value.detach()

    def _value_in_place(self, batch: Batch) -> Tensor:
        """Loss at the loaded parameters (grad mode on: PINN losses differentiate w.r.t. inputs)."""
        with torch.enable_grad():
            return self.loss_fn(self.model, batch).detach()

    def _hvp_in_place(self, batch: Batch, v: Tensor) -> Tensor:
        """∇²f v at the loaded parameters by double backward through the module's parameters
        (the static-buffer form of :meth:`hvp`; ``v`` flat). Returns a new flat tensor."""
        vs = [t.view(s) for t, s in zip(torch.split(v, self.numels), self.shapes)]
        with torch.enable_grad():
            value = self.loss_fn(self.model, batch)
            grads = torch.autograd.grad(value, self._params, create_graph=True, allow_unused=True)
            terms = [(g * w).sum() for g, w in zip(grads, vs) if g is not None and g.requires_grad]
            if not terms:  # the gradient does not depend on the parameters: the loss is linear
                return torch.zeros_like(v)
            hv = torch.autograd.grad(torch.stack(terms).sum(), self._params, allow_unused=True)
        return torch.cat(
            [(h if h is not None else torch.zeros_like(p)).reshape(-1) for h, p in zip(hv, self._params)]
        ).detach()

    def _check_grads_in_place(self) -> None:
        grad = self._params[0].grad if self._params else None
        if self._params and (grad is None or self._flat_grad is None or grad.data_ptr() != self._flat_grad.data_ptr()):
            raise RuntimeError(
                "ml2bench.core.objective: autograd replaced a parameter's .grad instead of "
                "accumulating into the flat buffer"
            )

    def _charge(self, batch: Batch) -> None:
        self.counter.charge(self.level, batch.size / self.n_train, self.cost_ratio)

    def loss(self, x: Tensor, batch: Batch) -> float:
        """f(x) on ``batch`` (charged as one evaluation)."""
        self._charge(batch)
        self._load(x)
        if self.graphs != "off":
            from ml2bench.core.cost.graphs import StaticEvaluation

            return float(StaticEvaluation.for_batch(self, batch, "loss").run(batch))
        return float(self._value_in_place(batch))

    def loss_grad(self, x: Tensor, batch: Batch) -> tuple[float, Tensor]:
        """f(x) and ∇f(x) on ``batch`` (charged as one evaluation)."""
        self._charge(batch)
        self._load(x)
        if self.graphs != "off":
            from ml2bench.core.cost.graphs import StaticEvaluation

            value = StaticEvaluation.for_batch(self, batch).run(batch)
        else:
            value = self._value_and_grad_in_place(batch)
            self._check_grads_in_place()
        assert self._flat_grad is not None
        return float(value), self._flat_grad.clone()

    def measure_hvp_cost(self, batch: Batch, x: Tensor | None = None) -> float:
        """Measure (once; kept in :attr:`hvp_ratio`) the operations of one Hessian-vector product
        relative to one loss+gradient at ``x`` (default: the module's parameters) on ``batch``
        (:func:`ml2bench.core.cost.opcount.hvp_cost_ratio`: one gradient and one product under an
        operation counter; about 2-3 on networks). Uncharged: the runner calls it before training,
        outside the clock, for a method that uses products (:meth:`Method.uses_hvp`)."""
        if self.hvp_ratio is None:
            from ml2bench.core.cost.opcount import hvp_cost_ratio

            x = self.initial_x() if x is None else x
            self.hvp_ratio = hvp_cost_ratio(self, x, torch.ones_like(x), batch)
        return self.hvp_ratio

    def hvp(self, x: Tensor, v: Tensor, batch: Batch) -> Tensor:
        """∇²f(x) v on ``batch`` by double backward (the gradient is built with ``create_graph``
        and differentiated once more along ``v``; forward-over-reverse would be the same).

        Charged as one evaluation weighted by its measured cost relative to :meth:`loss_grad`
        (:meth:`measure_hvp_cost`): ``grad_evals`` counts it once, ``work_units`` at that ratio.
        When the ratio was not measured before training, the first product measures it here and
        is charged for the measurement too (one gradient and one product more): evaluations inside
        a run are never free.
        Computed by :meth:`_hvp_in_place` on the flat parameter buffer: eagerly (``graphs ==
        "off"``, the autograd graph rebuilt at every call), or on static buffers, captured as a
        CUDA graph per batch shape and replayed with ``graphs == "cuda"`` (:mod:`ml2bench.core.cost.graphs`);
        both equal a double backward with ``x`` as the leaf (tests/test_graphs.py)."""
        fraction = batch.size / self.n_train
        if self.hvp_ratio is None:
            ratio = self.measure_hvp_cost(batch, x)
            self.counter.charge(self.level, fraction, self.cost_ratio)  # the measurement's gradient
            self.counter.charge(self.level, fraction, self.cost_ratio * ratio)  # and its product
        self.counter.charge(self.level, fraction, self.cost_ratio * self.hvp_ratio)
        self._load(x)
        if self.graphs != "off":
            from ml2bench.core.cost.graphs import StaticEvaluation

            return StaticEvaluation.for_batch(self, batch, "hvp").run(batch, v).clone()
        return self._hvp_in_place(batch, v.detach().to(self._flat))


def same_batch(a: Any, b: Any) -> bool:
    """True when ``b`` holds the very same data objects as ``a`` (the runner hands a new batch
    object per step; a full batch re-uses the same tensors). Callers keep ``a`` alive, so the
    identity test cannot be fooled by recycled memory."""
    if a is b:
        return True
    if a is None or b is None or type(a) is not type(b):
        return False
    if dataclasses.is_dataclass(a):
        names = [f.name for f in dataclasses.fields(a)]
    elif hasattr(a, "__dict__"):
        names = list(vars(a))
    else:
        return False
    for name in names:
        va, vb = getattr(a, name), getattr(b, name, None)
        if isinstance(va, Tensor) or isinstance(vb, Tensor):
            if va is not vb:
                return False
        else:
            try:
                if va is not vb and bool(va != vb):
                    return False
            except Exception:  # e.g. containers of tensors: compare by identity only
                return False
    return True


def is_finite(value: float) -> bool:
    return math.isfinite(value)
