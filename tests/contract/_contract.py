"""What the contract tests run, generated from the registries (like torch's ``optim_db``): every
registered method with its defaults and its ``smoke_variants``, on every registered problem at its
``smoke_params`` size; and an instrumented run that records what a contract is about.

Nothing here names a method or a problem: registering one (built-in, entry point or plugin file
loaded before collection) is what enrols it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from ml2bench.core import runner as runner_module
from ml2bench.core.config import RunConfig
from ml2bench.core.objective import Objective, WorkCounter, same_batch
from ml2bench.core.runner import RunResult, derive_seeds, run
from ml2bench.methods import METHODS
from ml2bench.methods.base import StepResult
from ml2bench.problems import PROBLEMS

INVARIANT_STEPS = 3  # runner steps of an invariant run: enough to pass a method's first-step special cases


def method_cases() -> list:
    """(method, hyper-parameters) for the defaults and each smoke variant of every method."""
    cases = []
    for name, cls in METHODS.items():
        for label, params in {"default": {}, **dict(cls.smoke_variants)}.items():
            cases.append(pytest.param(name, dict(params), id=name if label == "default" else f"{name}-{label}"))
    return cases


@functools.cache
def smoke_problem(name: str, seed: int = 0):
    """The problem ``name`` at its smoke size (float32, CPU), built as the runner builds it for ``seed``."""
    cls = PROBLEMS.get(name)
    hp = cls.params.validate(cls.smoke_params or {}, f"problem {name!r}")
    return cls(hp, seed=derive_seeds(seed)["data"], device=torch.device("cpu"), dtype=torch.float32)


@functools.cache
def smoke_objective(name: str, seed: int = 0) -> Objective:
    """The fine objective of :func:`smoke_problem`, on its own counter: to check reported losses."""
    return smoke_problem(name, seed).hierarchy(1, WorkCounter()).fine


def smoke_config(problem: str, method: str, method_params: dict, budget: dict, seed: int = 0) -> dict:
    return {
        "problem": problem,
        "method": method,
        "seed": seed,
        "problem_params": dict(PROBLEMS.get(problem).smoke_params or {}),
        "method_params": method_params,
        "budget": budget,
    }


@dataclass
class StepRecord:
    result: Any
    charged_grad_evals: float  # the counter's increase during the step
    logged_grad_evals: float  # the sum of batch.size / n_train over the evaluations seen
    evaluations: int
    x_start: torch.Tensor
    batch: Any


@dataclass
class Log:
    """What an instrumented run saw: steps, repeated points and uncharged evaluations."""

    steps: list[StepRecord] = field(default_factory=list)
    repeats: list[str] = field(default_factory=list)
    uncharged: int = 0
    in_step: bool = False
    charging: int = 0
    calls: int = 0
    step_calls: int = 0
    step_fraction: float = 0.0
    last: dict[int, tuple[torch.Tensor, Any]] = field(default_factory=dict)
    keep: list[Any] = field(default_factory=list)  # keeps batches alive: identity checks stay meaningful


def instrumented_run(monkeypatch, config: dict) -> tuple[RunResult, Log]:
    """``ml2bench.core.runner.run(config)`` with the objectives, the problem's loss and the method's
    step wrapped (by class, before anything is built): every evaluation of the loss during a step
    must come from a charged ``Objective`` call, consecutive loss/loss_grad calls of one objective
    must not repeat a point, and each step's result and charge are recorded."""
    log = Log()
    problem_cls, method_cls = PROBLEMS.get(config["problem"]), METHODS.get(config["method"])

    def charged(name):
        original = getattr(Objective, name)

        def wrapped(obj, x, *args):
            batch = args[-1]
            log.calls += 1
            if log.in_step:
                log.step_calls += 1
                log.step_fraction += batch.size / obj.n_train
            if name != "hvp":  # a Hessian-vector product at the iterate is another quantity
                prev = log.last.get(id(obj))
                if prev is not None and torch.equal(prev[0], x) and same_batch(prev[1], batch):
                    log.repeats.append(f"call {log.calls}: {name} at level {obj.level} repeats the previous point")
                log.last[id(obj)] = (x.detach().clone(), batch)
                log.keep.append(batch)
            log.charging += 1
            try:
                return original(obj, x, *args)
            finally:
                log.charging -= 1

        monkeypatch.setattr(Objective, name, wrapped)

    for name in ("loss", "loss_grad", "hvp"):
        charged(name)

    problem_loss = problem_cls.loss

    def loss(self, f, batch):
        if log.in_step and not log.charging:
            log.uncharged += 1
        return problem_loss(self, f, batch)

    monkeypatch.setattr(problem_cls, "loss", loss)

    def measuring(owner, name):
        """``owner.name`` wrapped so that its loss evaluations do not count as uncharged: the
        runner's evaluation points (also at a method's checkpoints inside a step) are uncharged by
        design; they measure, they do not train."""
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapped(*args, **kwargs):
            log.charging += 1
            try:
                return original(*args, **kwargs)
            finally:
                log.charging -= 1

        monkeypatch.setattr(owner, name, wrapped)

    measuring(problem_cls, "evaluate")
    measuring(runner_module, "full_train_loss")
    method_step = method_cls.step

    def step(self, batch):
        counter = self.hierarchy.counter
        before, x_start = counter.grad_evals, self.x.detach().clone()
        log.in_step, log.step_calls, log.step_fraction = True, 0, 0.0
        try:
            result = method_step(self, batch)
        finally:
            log.in_step = False
        log.steps.append(
            StepRecord(result, counter.grad_evals - before, log.step_fraction, log.step_calls, x_start, batch)
        )
        return result

    monkeypatch.setattr(method_cls, "step", step)
    result = run(RunConfig.from_dict(config))
    monkeypatch.undo()
    return result, log


def well_formed(record: StepRecord) -> list[str]:
    """What is wrong with one step's result (empty: nothing)."""
    r = record.result
    if not isinstance(r, StepResult):
        return [f"step returned {type(r).__name__}, not StepResult"]
    bad = []
    if not isinstance(r.loss, float):
        bad.append(f"loss is {type(r.loss).__name__}, not float")
    if not isinstance(r.info, dict) or not all(isinstance(k, str) for k in r.info):
        bad.append(f"info is not a dict with str keys: {r.info!r}")
    elif not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r.info.values()):
        bad.append(f"info values are not numbers: {r.info!r}")
    if not r.stops and record.evaluations == 0:
        bad.append("a step that goes on evaluated nothing")
    if not math.isclose(record.charged_grad_evals, record.logged_grad_evals, rel_tol=1e-9, abs_tol=1e-12):
        bad.append(
            f"the counter grew by {record.charged_grad_evals} grad_evals, the evaluations made add up to "
            f"{record.logged_grad_evals}: work counted outside Objective"
        )
    return bad


def values(history) -> dict[str, list[str]]:
    """The history's numbers that a deterministic run must repeat bit for bit (not the clocks), as
    ``repr`` (exact for floats, and NaN equals NaN)."""
    columns = ("iteration", "epoch", "grad_evals", "work_units", "train_loss", "step_loss", "test_loss", "test_metric")
    return {c: [repr(v) for v in history[c].tolist()] for c in columns}
