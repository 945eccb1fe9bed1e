"""``MethodOptimizer``: a ``torch.optim.Optimizer`` that runs one of ml2bench's methods on a user's model.

The adapter has no algorithm of its own. It builds what the harness builds from a problem — one
:class:`~ml2bench.core.objective.Objective` per level sharing one
:class:`~ml2bench.core.objective.WorkCounter`, the transfers, a
:class:`~ml2bench.core.hierarchy.Hierarchy` — from the user's model, and each ``step`` is one
:meth:`~ml2bench.methods.base.Method.step` of the registered method on it. So the benchmark and a
user's loop run the same code, and ``opt.work`` counts what the benchmark counts.

Two calling styles (both may be mixed on one optimizer):

* ``opt.step(closure)``. ``closure(model) -> loss`` evaluates the loss of the model it is given
  (no ``zero_grad``, no ``backward``: the optimizer evaluates the fine *and the coarse* models and
  differentiates). Single-level methods (TrustRegion, LBFGS, SPQN/APTS) also take torch's
  zero-argument closure (``zero_grad``, forward, ``backward``, return the loss), so they drop into
  Lightning's and PINA's loops. One closure evaluation is charged as one gradient evaluation of
  its batch; pass the same closure object to let the method reuse f, ∇f held for the iterate.
* ``opt.step(batch=batch)`` with ``loss_fn(model, batch)`` and ``n_train`` given at construction:
  the harness's contract (``batch.size`` samples charged as ``batch.size / n_train``), with CUDA
  graphs (``graphs="cuda"``), data decompositions and RMTR's batch growth (``sampler=``).

The model's parameters stay the user's ``Parameter`` objects (the objective binds them in place)
and hold the iterate after every step; their ``.grad`` holds ∇f there when the method keeps it.
A change of the parameters between steps from outside (``model.load_state_dict``) is taken as
the new iterate.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ml2bench.core.cost.flops import graph_leaves, loss_flops
from ml2bench.core.hierarchy import Hierarchy, Transfer
from ml2bench.core.objective import Objective, WorkCounter
from ml2bench.core.params import ConfigError, Param, ParamSpec, UnsupportedModelError, spec
from ml2bench.methods.base import Method, StepResult
from ml2bench.multilevel.depth import KINDS, DepthTransfer, coarsen
from ml2bench.optim.checks import check_depth_hierarchy, check_model
from ml2bench.problems.base import FLOP_PROBE_SAMPLES

GRAPHS = ("off", "static", "cuda")
#: the adapter's own scalar options (the method's hyper-parameters are validated by the method's spec)
OPTIONS = spec(
    Param("n_train", int, None, "samples in the training set (batch style)", low=1, nullable=True),
    Param("interpolation", str, "constant", "depth transfer of the coarsened stacks", choices=KINDS),
    Param("graphs", str, "off", "off, static (CPU path) or cuda (CUDA graphs; batch style)", choices=GRAPHS),
    Param("allow_low_precision", bool, False, "allow float16/bfloat16 parameters"),
)


@dataclass
class ClosureBatch:
    """A step's closure in the place of a batch; ``size`` is the objective's ``n_train`` (one
    closure evaluation is one gradient evaluation of its batch)."""

    closure: Callable[..., Tensor]
    takes_model: bool
    size: int


def takes_model(closure: Callable[..., Any]) -> bool:
    """``closure(model)`` (a required positional parameter) rather than torch's ``closure()``."""
    try:
        params = inspect.signature(closure).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: torch's convention
        return False
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty for p in params)


class _UserObjective(Objective):
    """An objective whose batch may be a zero-argument closure: the closure runs forward and
    backward itself, and its gradients are gathered into the flat gradient buffer."""

    def _value_and_grad_in_place(self, batch: Any) -> Tensor:
        if not (isinstance(batch, ClosureBatch) and not batch.takes_model):
            return super()._value_and_grad_in_place(batch)
        assert self._flat_grad is not None
        self._flat_grad.zero_()
        with torch.enable_grad():
            value = batch.closure()
        for p, g in zip(self._params, self._grads):
            if p.grad is not g:  # zero_grad() dropped the view, backward made a new tensor
                if p.grad is not None:
                    g.copy_(p.grad)
                p.grad = g
        return torch.as_tensor(value).detach()

    def _value_in_place(self, batch: Any) -> Tensor:
        if isinstance(batch, ClosureBatch) and not batch.takes_model:
            return self._value_and_grad_in_place(batch)
        return super()._value_in_place(batch)

    def _hvp_in_place(self, batch: Any, v: Tensor) -> Tensor:
        if isinstance(batch, ClosureBatch) and not batch.takes_model:
            raise UnsupportedModelError("a zero-argument closure cannot give Hessian-vector products")
        return super()._hvp_in_place(batch, v)


class _Parameters(nn.Module):
    """Holds a bare list of parameters (``Optimizer(model.parameters())``) for the objective."""

    def __init__(self, params: Iterable[nn.Parameter]) -> None:
        super().__init__()
        for i, p in enumerate(params):
            if not isinstance(p, nn.Parameter):
                raise UnsupportedModelError(f"parameter {i} is a {type(p).__name__}; allowed: nn.Parameter")
            self.register_parameter(f"p{i}", p)

    def forward(self, *args: Any) -> Tensor:
        raise UnsupportedModelError(
            "this optimizer was given parameters, not a model: only zero-argument closures can be evaluated"
        )


class MethodOptimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` running the registered ml2bench method :attr:`method_cls` (see the
    module docstring of :mod:`ml2bench.optim.base`).

    Arguments: the model (positional: ``model=`` is the trust-region hyper-parameter of RMTR and
    TrustRegion) or its parameters; keyword-only ``loss_fn(model, batch) -> loss`` and ``n_train`` for
    the batch style; ``coarse_models`` (a factory ``level -> nn.Module`` or a list for levels 1..L−1)
    and ``transfers`` (a factory ``(fine, coarse, level) -> Transfer`` or a list) instead of the
    coarsened residual stacks; ``hierarchy`` (a ready :class:`~ml2bench.core.hierarchy.Hierarchy`);
    ``interpolation`` of the depth transfer (``constant`` or ``linear``); ``cost_ratios`` of the
    levels (default: FLOPs of the loss measured on the first step's batch or closure); ``graphs``
    (``off``, ``static`` or ``cuda``: CUDA graphs, batch style); ``sampler`` (a
    :class:`~ml2bench.numerics.sampling.BatchSampler` for RMTR's batch growth);
    ``allow_low_precision`` (fp16/bf16). The hyper-parameters below are the method's, validated as
    in the benchmark's configs.
    """

    method_cls: ClassVar[type[Method]]
    #: hyper-parameters the class fixes (not keyword arguments), e.g. SPQN's globalization
    fixed: ClassVar[dict[str, Any]] = {}
    #: hyper-parameters of the method that are not keyword arguments here (set from ``fixed``)
    hidden: ClassVar[tuple[str, ...]] = ()
    #: whether the method evaluates coarse models (then closures must take the model)
    multilevel: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if hasattr(cls, "method_cls"):
            lines = [f"    {p.name} = {p.default!r}: {p.doc} [{p.describe_allowed()}]" for p in cls.hp_spec()]
            cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n\n    Hyper-parameters:\n\n" + "\n".join(lines) + "\n"

    @classmethod
    def hp_spec(cls) -> ParamSpec:
        """The keyword hyper-parameters: the method's declared ones less the fixed and hidden ones."""
        return ParamSpec(
            tuple(p for p in cls.method_cls.params if p.name not in cls.fixed and p.name not in cls.hidden)
        )

    def __init__(
        self,
        model: nn.Module | Iterable[nn.Parameter] | None = None,
        /,
        *,
        loss_fn: Callable[[nn.Module, Any], Tensor] | None = None,
        n_train: int | None = None,
        coarse_models: Callable[[int], nn.Module] | Sequence[nn.Module] | None = None,
        transfers: Callable[[nn.Module, nn.Module, int], Transfer] | Sequence[Transfer] | None = None,
        hierarchy: Hierarchy | None = None,
        interpolation: str = "constant",
        cost_ratios: Sequence[float] | None = None,
        graphs: str = "off",
        sampler: Any = None,
        allow_low_precision: bool = False,
        **hp: Any,
    ) -> None:
        owner = type(self).__name__
        hp = self.hp_spec().validate(hp, owner)
        self.hp = {**hp, **self.fixed}
        levels = self.method_cls.levels_required(self.hp)
        options = {"n_train": n_train, "interpolation": interpolation, "graphs": graphs}
        OPTIONS.validate(dict(options, allow_low_precision=allow_low_precision), owner)
        if hierarchy is None:
            if model is None:
                raise ConfigError(f"{owner}: give the model (or a hierarchy=)")
            if (loss_fn is None) != (n_train is None):
                raise ConfigError(f"{owner}: the batch style needs both loss_fn= and n_train= (or neither: closures)")
            self._user_loss, self._n_train = loss_fn, n_train or 1
            self._batches_ok, self._closures_ok = loss_fn is not None, True
            model, hierarchy = self._from_model(
                model, levels, coarse_models, transfers, interpolation, allow_low_precision
            )
        else:
            if model is not None and model is not hierarchy.fine.model:
                raise ConfigError(f"{owner}: model is not the hierarchy's finest model; give one of them")
            if hierarchy.levels < levels:
                raise ConfigError(f"{owner}: levels={levels} but the hierarchy has {hierarchy.levels}")
            model = hierarchy.fine.model
            check_model(model, owner, allow_low_precision)
            check_transfers(hierarchy, owner)
            self._user_loss, self._n_train = None, hierarchy.fine.n_train
            self._batches_ok, self._closures_ok = True, False
        self.hierarchy, self.model, self.counter = hierarchy, model, hierarchy.counter
        self._costs_known = levels == 1 or not self._closures_ok
        if cost_ratios is not None:
            self._set_cost_ratios(cost_ratios)
        for objective in hierarchy.objectives:
            objective.graphs = graphs
        self._graphs = graphs
        x0 = hierarchy.fine.initial_x()
        self.method = self._make_method(hierarchy, x0)
        if sampler is not None:
            if not hasattr(self.method, "set_sampler"):
                raise ConfigError(f"{owner}: sampler= is for RMTR's batch_growth; {owner} draws no batches")
            self.method.set_sampler(sampler)
        self.last: StepResult | None = None
        self._checked: tuple[Any, set[int]] = (None, set())  # closure, levels whose use of the model was checked
        super().__init__(list(model.parameters()), dict(self.hp))
        # filled at construction: torch.distributed.checkpoint takes an empty state for a fresh optimizer
        # (and would call step(None) to fill it), and wants an entry for every parameter
        self._key, *rest = self.param_groups[0]["params"]
        self.state[self._key] = self._packed_state()
        for p in rest:
            self.state[p] = {}

    # --- construction helpers -------------------------------------------------------------------
    def _from_model(
        self,
        model: Any,
        levels: int,
        coarse_models: Any,
        transfers: Any,
        interpolation: str,
        allow_low_precision: bool,
    ) -> tuple[nn.Module, Hierarchy]:
        """The hierarchy of the user's model: its coarse models, one objective per level (the loss
        is the step's closure or ``loss_fn``), the transfers, one work counter."""
        owner = type(self).__name__
        if not isinstance(model, nn.Module):
            if levels > 1:
                raise UnsupportedModelError(
                    f"{owner}: levels={levels} needs the model (an nn.Module) to build coarse levels, "
                    f"not its parameters"
                )
            model = _Parameters(_single_group(model, owner))
        check_model(model, owner, allow_low_precision)
        models = self._models(model, levels, coarse_models, owner)
        for m in models[1:]:
            check_model(m, f"{owner} (coarse model)", allow_low_precision)
        counter = WorkCounter()
        objectives = [
            (_UserObjective if level == 0 else Objective)(
                m, _LevelLoss(self, level), counter, self._n_train, level=level
            )
            for level, m in enumerate(models)
        ]
        return model, Hierarchy(objectives, self._transfers(models, transfers, interpolation, owner), counter)

    def _set_cost_ratios(self, cost_ratios: Sequence[float]) -> None:
        ratios = [float(r) for r in cost_ratios]
        levels = self.hierarchy.levels
        if len(ratios) != levels or ratios[0] != 1.0 or not all(r > 0 and math.isfinite(r) for r in ratios):
            raise ConfigError(
                f"{type(self).__name__}: cost_ratios = {list(cost_ratios)!r}; allowed: {levels} positive numbers, "
                f"the first 1.0 (each level's cost relative to the finest)"
            )
        for objective, ratio in zip(self.hierarchy.objectives, ratios):
            objective.cost_ratio = ratio
        self._costs_known = True

    def _make_method(self, hierarchy: Hierarchy, x0: Tensor) -> Method:
        return self.method_cls(hierarchy, x0, dict(self.hp))

    def _models(self, model: nn.Module, levels: int, coarse_models: Any, owner: str) -> list[nn.Module]:
        if levels == 1:
            return [model]
        if coarse_models is None:
            check_depth_hierarchy(model, levels, owner)
            return [model] + [coarsen(model, level) for level in range(1, levels)]
        coarse = (
            [coarse_models(level) for level in range(1, levels)] if callable(coarse_models) else list(coarse_models)
        )
        if len(coarse) != levels - 1 or not all(isinstance(m, nn.Module) for m in coarse):
            raise ConfigError(f"{owner}: coarse_models must give {levels - 1} nn.Module(s) for levels 1..{levels - 1}")
        p0 = next(model.parameters())
        return [model] + [m.to(device=p0.device, dtype=p0.dtype) for m in coarse]

    def _transfers(self, models: list[nn.Module], transfers: Any, kind: str, owner: str) -> list[Transfer]:
        n = len(models) - 1
        if transfers is None:
            return [DepthTransfer(models[l], models[l + 1], kind) for l in range(n)]
        made = [transfers(models[l], models[l + 1], l) for l in range(n)] if callable(transfers) else list(transfers)
        if len(made) != n:
            raise ConfigError(f"{owner}: transfers must give {n} Transfer(s) between levels 0..{n}")
        return made

    # --- the two calling styles -----------------------------------------------------------------
    def step(self, closure: Callable[..., Tensor] | None = None, *, batch: Any = None) -> Tensor:  # type: ignore[override]
        """One step of the method: ``step(closure)`` or ``step(batch=batch)`` (see the module
        docstring). Returns the loss at the iterate the step started from (as torch's LBFGS)."""
        owner = type(self).__name__
        changed = {k: v for k, v in self.param_groups[0].items() if k in self.hp and v != self.hp[k]}
        if changed:
            raise ConfigError(
                f"{owner}.step: hyper-parameters are fixed at construction (the method derives its state from them); "
                f"param_groups changed {changed}: build a new optimizer (and load_state_dict) instead"
            )
        batch = self._batch_of(closure, batch, owner)
        self._follow_model()
        if not self._costs_known:
            self._measure_costs(batch if batch is not None else self._probe())
        fine = self.hierarchy.fine
        try:
            self.last = result = self.method.step(batch)
        finally:
            fine.load(self.method.x)  # the module holds the iterate, not the last trial point
        _, _, g = self.method._held()
        if g is not None and fine._flat_grad is not None:
            fine._flat_grad.copy_(g)
        return torch.tensor(result.loss, dtype=self.method.x.dtype)

    def _batch_of(self, closure: Any, batch: Any, owner: str) -> Any:
        if closure is not None and batch is not None:
            raise ValueError(f"{owner}.step: give a closure or a batch, not both")
        if closure is not None:
            model_arg = takes_model(closure)
            if not model_arg and self.multilevel:
                raise UnsupportedModelError(
                    f"{owner}.step: the closure takes no arguments, but {owner} evaluates coarse models too; "
                    f"write it as closure(model) -> loss (no zero_grad, no backward)"
                )
            if not model_arg and self.hp.get("model") == "hessian":
                raise UnsupportedModelError(
                    f"{owner}.step: model='hessian' needs Hessian-vector products of the loss, which a zero-argument "
                    f"closure cannot give; write it as closure(model) -> loss"
                )
            if model_arg and isinstance(self.model, _Parameters):
                raise UnsupportedModelError(
                    f"{owner}.step: closure(model) needs the model; this optimizer got parameters"
                )
            if self.hp.get("decomposition") == "data":
                raise UnsupportedModelError(
                    f"{owner}.step: decomposition='data' shards the batch, which a closure hides; use step(batch=...)"
                )
            if not self._closures_ok:
                raise ValueError(f"{owner}.step(closure): a hierarchy= evaluates its own losses; use step(batch=...)")
            if self._graphs != "off":
                raise ConfigError(
                    f"{owner}.step(closure): graphs={self._graphs!r} captures batches; use step(batch=...)"
                )
            return ClosureBatch(closure, model_arg, self._n_train)
        if batch is None:
            if getattr(self.method, "growth", None) is not None:  # RMTR's batch growth draws its own
                return None
            raise ValueError(
                f"{owner}.step: give a closure (step(closure), closure(model) -> loss) or a batch "
                f"(step(batch=batch) with loss_fn= and n_train= at construction)"
            )
        if not self._batches_ok:
            raise ValueError(f"{owner}.step(batch=...): the batch style needs loss_fn= and n_train= at construction")
        if not isinstance(getattr(batch, "size", None), int):
            raise ValueError(
                f"{owner}.step: a batch needs an int attribute 'size' (its number of samples; charged as "
                f"size / n_train), e.g. a dataclass of tensors; got {type(batch).__name__}"
            )
        return batch

    def _follow_model(self) -> None:
        """Take parameters changed from outside since the last step as the new iterate."""
        fine = self.hierarchy.fine
        x = fine.initial_x()
        fine.bind()  # also after a p.data = ... on any parameter
        if not torch.equal(x, self.method.x):
            self.method.set_iterate(x)

    def _probe(self) -> Any:
        """The batch the harness measures level costs on, from the batch-growth sampler's data:
        the first of ``min(64, n_train)`` samples in the order of a generator seeded 0."""
        size = min(FLOP_PROBE_SAMPLES, self._n_train)
        return next(iter(self.method.growth.sampler.train_batches(size, torch.Generator().manual_seed(0))))

    def _measure_costs(self, batch: Any) -> None:
        """Cost ratio of each level: FLOPs of its loss's forward+backward on this step's batch
        (closure) relative to the finest, as :meth:`~ml2bench.problems.base.Problem.hierarchy`."""
        flops = [float(loss_flops(o.model, o.loss_fn, batch)) for o in self.hierarchy.objectives]
        for objective, f in zip(self.hierarchy.objectives, flops):
            objective.cost_ratio = f / flops[0]
        self._costs_known = True

    # --- what a user loop reads -------------------------------------------------------------------
    @property
    def work(self) -> WorkCounter:
        """Evaluations so far: ``grad_evals`` (units of one gradient evaluation of the training set,
        on any level), ``work_units`` (weighted by each level's cost ratio), ``by_level``."""
        return self.counter

    @property
    def converged(self) -> bool:
        """The last step met the method's stated convergence criterion (``stop_reason`` names it)."""
        return self.last is not None and self.last.converged

    @property
    def stop_reason(self) -> str:
        """Why the method would stop after the last step ('' while it goes on): the harness's
        summary ``stop_reason`` (``grad_tol`` when converged; ``stalled``, ``roundoff``, ... when not)."""
        return self.last.stop_reason if self.last is not None else ""

    def curvature_scaling(self, closure: Callable[..., Tensor] | None = None, *, batch: Any = None) -> list[dict]:
        """:func:`ml2bench.multilevel.coarse.curvature_scaling` of this hierarchy at the iterate: does
        each coarse level's curvature match its gradient restriction (``ratio`` ≈ 1)? A check for
        hand-made coarse models and transfers; its Hessian-vector products are not charged to
        :attr:`work`."""
        from ml2bench.multilevel.coarse import curvature_scaling

        batch = self._batch_of(closure, batch, type(self).__name__)
        scratch = WorkCounter()
        saved = [o.counter for o in self.hierarchy.objectives]
        try:
            for o in self.hierarchy.objectives:
                o.counter = scratch
            return curvature_scaling(self.hierarchy, self.method.x, batch)
        finally:
            for o, c in zip(self.hierarchy.objectives, saved):
                o.counter = c
            self.hierarchy.fine.load(self.method.x)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if getattr(self, "method", None) is not None and self.param_groups:
            raise UnsupportedModelError(
                f"{type(self).__name__}: one parameter group only (the method optimises one flat vector)"
            )
        super().add_param_group(param_group)

    def close(self) -> None:
        """Release what the method holds (a process group it created)."""
        self.method.close()

    # --- checkpoints --------------------------------------------------------------------------------
    def _packed_state(self) -> dict[str, Any]:
        return {
            "method": self.method.state_dict(),
            "work": self.counter.state_dict(),
            "cost_ratios": [o.cost_ratio for o in self.hierarchy.objectives] if self._costs_known else None,
        }

    def state_dict(self) -> dict[str, Any]:
        """torch's format: ``state`` (the method's state, the work counter and the level cost ratios,
        under the first parameter, as torch's LBFGS keeps its state) and ``param_groups`` (the
        hyper-parameters)."""
        self.state[self._key] = self._packed_state()
        return super().state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load :meth:`state_dict`'s output into an optimizer built the same way (the same model
        and hyper-parameters: a difference raises). The model's parameters become the saved iterate."""
        saved = {k: v for k, v in state_dict["param_groups"][0].items() if k not in ("params", "param_names")}
        mine = {k: v for k, v in self.param_groups[0].items() if k not in ("params", "param_names")}
        if saved != mine:
            diff = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k))
            raise ConfigError(
                f"{type(self).__name__}.load_state_dict: saved with other hyper-parameters "
                + ", ".join(f"{k}={saved.get(k)!r} (here {mine.get(k)!r})" for k in diff)
            )
        super().load_state_dict(state_dict)
        state = self.state[self._key]
        self.method.load_state_dict(state["method"])
        self.counter.load_state_dict(state["work"])
        if state["cost_ratios"] is not None:
            for objective, ratio in zip(self.hierarchy.objectives, state["cost_ratios"]):
                objective.cost_ratio = float(ratio)
            self._costs_known = True
        self.hierarchy.fine.load(self.method.x)


class _LevelLoss:
    """The loss of level ``level``'s objective: the user's ``loss_fn(model, batch)`` for a batch,
    ``closure(model)`` for a closure — checked, once per closure and level, to have used the model
    it was given (a closure that evaluates the captured fine model during a coarse evaluation would
    give the fine loss a coarse cost and gradient)."""

    def __init__(self, opt: MethodOptimizer, level: int) -> None:
        self.opt = opt
        self.level = level

    def __call__(self, model: nn.Module, batch: Any) -> Tensor:
        if not isinstance(batch, ClosureBatch):
            if self.opt._user_loss is None:
                raise ValueError(
                    f"{type(self.opt).__name__}.step(batch=...): the batch style needs loss_fn= and n_train= at "
                    f"construction"
                )
            return self.opt._user_loss(model, batch)
        value = batch.closure(model)
        closure, done = self.opt._checked
        if closure is not batch.closure:
            done = set()
            self.opt._checked = (batch.closure, done)
        if self.level not in done:
            others = {
                id(p) for o in self.opt.hierarchy.objectives if o.level != self.level for p in o.model.parameters()
            }
            if not graph_leaves(value) - others:
                raise UnsupportedModelError(
                    f"{type(self.opt).__name__}: during a level-{self.level} evaluation the closure did not use the "
                    f"model it was given (its loss depends on no parameter of that model); write it as "
                    f"closure(model) -> loss_of(model(inputs)), not with the captured model"
                )
            done.add(self.level)
        return value


def _single_group(params: Iterable[Any], owner: str) -> list[nn.Parameter]:
    items = list(params)
    if items and isinstance(items[0], dict):
        if len(items) != 1:
            raise UnsupportedModelError(f"{owner}: one parameter group only (the method optimises one flat vector)")
        extra = set(items[0]) - {"params"}
        if extra:
            raise UnsupportedModelError(
                f"{owner}: per-group options {sorted(extra)} are not supported; give hyper-parameters as keywords"
            )
        items = list(items[0]["params"])
    return items


def check_transfers(hierarchy: Hierarchy, owner: str) -> None:
    """A user-built hierarchy's transfers map between the levels' sizes and satisfy R_x P = I (on a
    random coarse vector; no evaluation)."""
    for l, t in enumerate(hierarchy.transfers):
        fine, coarse = hierarchy.objectives[l], hierarchy.objectives[l + 1]
        x = fine.initial_x()
        y = torch.randn(coarse.n, generator=torch.Generator().manual_seed(l), dtype=torch.float64).to(x)
        try:
            px, rx, rg = t.prolongate(y), t.restrict(x), t.restrict_grad(x)
        except Exception as err:  # noqa: BLE001
            raise UnsupportedModelError(f"{owner}: transfer {l} fails on vectors of the levels' sizes: {err}") from err
        if px.shape != (fine.n,) or rx.shape != (coarse.n,) or rg.shape != (coarse.n,):
            raise UnsupportedModelError(
                f"{owner}: transfer {l} maps to shapes P: {tuple(px.shape)}, R_x: {tuple(rx.shape)}, "
                f"R_g: {tuple(rg.shape)}; need P: ({fine.n},), R_x and R_g: ({coarse.n},)"
            )
        err = float((t.restrict(px) - y).norm()) / max(float(y.norm()), 1e-300)
        if not err <= 1e4 * torch.finfo(x.dtype).eps:
            raise UnsupportedModelError(
                f"{owner}: transfer {l} has R_x P != I (relative error {err:.2g}); R_x must be a left inverse of P"
            )
