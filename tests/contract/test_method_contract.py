"""The method contract, checked for every registered method (its defaults and its ``smoke_variants``)
on every registered problem it fits, and on its own smoke runs (benchopt's per-solver tests, torch's
``optim_db``): the cases come from the registries, so a new method is enrolled by registering it.

* it declares what it is: ``name``, ``description``, ``params``, at least one ``SmokeRun``;
* fair accounting: every evaluation of the loss during a step is a charged ``Objective`` call, the
  work counter grows by exactly what those calls charged, and no two consecutive evaluations of
  one objective are at the same point on the same batch (the second would be free to keep:
  ``torch.optim.LBFGS`` with one iteration per runner step paid for 35 of 79 evaluations twice);
* each step returns a well-formed ``StepResult`` (a float loss: the loss at the iterate it started
  from; number-valued info; a stop reason from ``StopReason``), and a step that goes on evaluated
  something; the run ends with a known stop reason and the status it implies;
* determinism: the same config twice gives the same history bit for bit;
* it learns on its smoke runs: each clears the floor that means "learned" (accuracy >= 0.5 on 10
  classes, PINN relative L2 <= 0.9; :func:`ml2bench.sweep.quality.floor_failures`).
"""

from __future__ import annotations

import math

import pytest
import torch
from _contract import (
    INVARIANT_STEPS,
    instrumented_run,
    method_cases,
    smoke_config,
    smoke_objective,
    smoke_problem,
    values,
    well_formed,
)

from ml2bench.core.config import BUDGET, RunConfig
from ml2bench.core.params import ConfigError, ParamSpec
from ml2bench.core.runner import run
from ml2bench.core.stop import StopReason
from ml2bench.methods import METHODS
from ml2bench.problems import PROBLEMS
from ml2bench.sweep import quality

SMOKE_RUNS = [
    pytest.param(name, i, id=f"{name}-{run.problem}")
    for name, cls in METHODS.items()
    for i, run in enumerate(cls.smoke)
]


@pytest.mark.parametrize("method", METHODS.names())
def test_declares_name_description_params_and_smoke_runs(method):
    cls = METHODS.get(method)
    assert cls.name == method and isinstance(cls.description, str) and cls.description
    assert isinstance(cls.params, ParamSpec)
    assert cls.smoke, f"method {method!r} declares no smoke runs: add smoke = (SmokeRun(problem, budget, params),)"
    for run_ in cls.smoke:
        assert run_.problem in PROBLEMS, f"smoke run on unknown problem {run_.problem!r}"
        assert set(run_.budget) <= set(BUDGET.names()) and run_.budget, run_.budget
        RunConfig.from_dict(smoke_config(run_.problem, method, dict(run_.params), dict(run_.budget)))
    for params in cls.smoke_variants.values():
        cls.params.validate(params, f"method {method!r} smoke variant")


@pytest.mark.parametrize("problem", PROBLEMS.names())
@pytest.mark.parametrize("method, params", method_cases())
def test_accounting_and_step_results(method, params, problem, monkeypatch):
    config = smoke_config(problem, method, params, {"iterations": INVARIANT_STEPS})
    try:
        result, log = instrumented_run(monkeypatch, config)
    except ConfigError as err:  # refused before any work: levels the problem lacks, batches that cannot split
        pytest.skip(f"not applicable: {err}")
    s = result.summary.iloc[0]
    assert s["status"] != "failed", s["error"]
    assert log.steps, "no step was taken"
    assert log.uncharged == 0, f"{log.uncharged} evaluations of the loss during steps were not charged"
    assert not log.repeats, log.repeats[:5]
    for k, record in enumerate(log.steps):
        assert not well_formed(record), (k, well_formed(record))
        if "samples" not in record.result.info and math.isfinite(record.result.loss):  # on the runner's batch
            f = smoke_objective(problem).loss(record.x_start, record.batch)
            assert record.result.loss == pytest.approx(f, rel=1e-4, abs=1e-6), ("loss at the start", k)
    reason = StopReason.parse(s["stop_reason"])
    assert reason.status == s["status"]
    if s["status"] != "diverged":
        assert reason == (log.steps[-1].result.stop_reason or StopReason.BUDGET_ITERATIONS)


@pytest.mark.parametrize("method", METHODS.names())
def test_deterministic(method):
    """The first smoke run (seed 0, at most 3 steps) twice: the same history, bit for bit."""
    run_ = METHODS.get(method).smoke[0]
    budget = {"iterations": INVARIANT_STEPS}
    config = RunConfig.from_dict(smoke_config(run_.problem, method, dict(run_.params), budget))
    first, second = run(config), run(config)
    assert first.status != "failed", first.summary["error"].iloc[0]
    assert values(first.history) == values(second.history)
    assert first.summary["stop_reason"].iloc[0] == second.summary["stop_reason"].iloc[0]


@pytest.mark.parametrize("method, index", SMOKE_RUNS)
def test_learns_on_its_smoke_runs(method, index, smoke_results):
    run_ = METHODS.get(method).smoke[index]
    rows = smoke_results[(smoke_results["method"] == method) & (smoke_results["problem"] == run_.problem)]
    assert sorted(rows["seed"]) == sorted(run_.seeds)
    failures = quality.floor_failures(rows)
    assert not failures, "\n".join(failures)


def _torch_equivalent_cases() -> list:
    """(method, hyper-parameters) of every method that names the torch.optim update it reproduces
    (overrides ``torch_equivalent``), with its defaults, its smoke runs' parameters and its smoke variants."""
    from ml2bench.methods.torch_optim import ElementwiseMethod

    cases = []
    for name, cls in METHODS.items():
        if getattr(cls, "torch_equivalent", ElementwiseMethod.torch_equivalent) is ElementwiseMethod.torch_equivalent:
            continue
        cases.append(pytest.param(name, {}, id=f"{name}-defaults"))
        cases += [pytest.param(name, dict(r.params), id=f"{name}-smoke-{r.problem}") for r in cls.smoke]
        cases += [pytest.param(name, dict(p), id=f"{name}-{label}") for label, p in cls.smoke_variants.items()]
    return cases


@pytest.mark.parametrize("method, params", _torch_equivalent_cases())
def test_iterates_equal_the_torch_optimizer_it_names(method, params):
    """A method that says which ``torch.optim`` update it reproduces (``torch_equivalent``) gives
    bit-identical iterates to that optimiser on the module's own parameters (mini-batches, 2 epochs)."""
    import copy

    from ml2bench.core.objective import WorkCounter

    problem = smoke_problem("mlp")
    torch.manual_seed(0)
    hierarchy = problem.hierarchy(1, WorkCounter())
    cls = METHODS.get(method)
    m = cls(hierarchy, hierarchy.fine.initial_x(), cls.params.validate(params, method))
    model = copy.deepcopy(hierarchy.fine.model)
    opt_cls, kwargs = m.torch_equivalent()
    opt = opt_cls(list(model.parameters()), **kwargs)
    for batch in list(problem.train_batches(64, torch.Generator().manual_seed(3))) * 2:
        m.step(batch)
        opt.zero_grad()
        problem.loss(model, batch).backward()
        opt.step()
    assert torch.equal(m.x, torch.nn.utils.parameters_to_vector(model.parameters()))


@pytest.mark.parametrize("method, params", method_cases())
def test_state_dict_resumes_the_same_steps(method, params):
    """k steps, ``state_dict``, ``load_state_dict`` into a new method, m steps: the iterate and the
    evaluations charged equal those of k + m steps without the interruption (what a run checkpoint
    relies on: every attribute that carries state from step to step is in ``state_attrs``)."""
    import copy
    import itertools

    from ml2bench.core.objective import WorkCounter
    from ml2bench.numerics.sampling import BatchSampler

    cls = METHODS.get(method)
    problem = smoke_problem(cls.smoke[0].problem)
    hp = cls.params.validate(params, method)
    levels = cls.levels_required(hp)
    if levels > problem.max_levels():
        pytest.skip(f"{method} needs {levels} levels")
    size = None if cls.full_batch else type(problem).default_batch_size
    batches = list(itertools.islice(itertools.cycle(problem.train_batches(size, torch.Generator().manual_seed(1))), 4))

    def fresh():
        torch.manual_seed(0)
        hierarchy = problem.hierarchy(levels, WorkCounter())
        m = cls(hierarchy, hierarchy.fine.initial_x(), hp)
        if cls.uses_hvp(hp):  # as the runner: the products' cost measured before the steps, uncharged
            hierarchy.measure_hvp_costs(batches[0])
        sampler = BatchSampler(problem.train_batches, problem.n_train, torch.Generator().manual_seed(2))
        if hasattr(m, "set_sampler"):
            m.set_sampler(sampler)
        return m, sampler

    straight, sampler = fresh()
    for batch in batches[:2]:
        straight.step(batch)
    state, charged = copy.deepcopy(straight.state_dict()), straight.hierarchy.counter.grad_evals
    drawn = copy.deepcopy(sampler.state_dict())  # a method's own batches: the runner saves its sampler too
    for batch in batches[2:]:
        straight.step(batch)
    resumed, resumed_sampler = fresh()
    resumed.load_state_dict(state)
    resumed_sampler.load_state_dict(drawn)
    for batch in batches[2:]:
        resumed.step(batch)
    assert torch.equal(resumed.x, straight.x)
    assert resumed.hierarchy.counter.grad_evals == pytest.approx(straight.hierarchy.counter.grad_evals - charged)
