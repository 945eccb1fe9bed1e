"""The problem contract, checked for every registered problem at its ``smoke_params`` size (the cases
come from the registry: a new problem is enrolled by registering it).

* it declares what it is (``name``, ``description``, ``params``, ``metric_name`` with a "learned"
  floor, ``smoke_params`` that validate);
* data: an epoch of batches covers the training set once, in full-batch and mini-batch form;
* the loss is a finite scalar that autograd can differentiate, ``evaluate`` gives finite
  ``test_loss`` and ``test_metric``;
* the same seed gives the same data and the same initial parameters;
* levels: every hierarchy it offers has cost ratios 1 > r_1 > r_2 ... and transfers with
  R_x P = I (restricting a prolongated coarse vector gives it back).
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from _contract import smoke_problem

from ml2bench.core.objective import WorkCounter
from ml2bench.core.params import ParamSpec
from ml2bench.problems import PROBLEMS
from ml2bench.sweep import quality

pytestmark = pytest.mark.parametrize("name", PROBLEMS.names())


def test_declares_its_interface_and_a_smoke_size(name):
    cls = PROBLEMS.get(name)
    assert cls.name == name and cls.description and isinstance(cls.params, ParamSpec)
    assert cls.smoke_params is not None, f"problem {name!r} declares no smoke_params (a ~1 s instance)"
    cls.params.validate(cls.smoke_params, f"problem {name!r}")
    row = {"problem": name, "method": "-", "seed": 0, "status": "ok", "metric_name": cls.metric_name}
    floor = quality.floor_failures(pd.DataFrame([{**row, "final_test_metric": 0.5}]))
    assert not any("no floor" in f for f in floor), f"metric {cls.metric_name!r} has no 'learned' floor in quality"


def test_an_epoch_covers_the_training_set_once(name):
    problem = smoke_problem(name)
    full = list(problem.train_batches(None, torch.Generator().manual_seed(0)))
    assert [b.size for b in full] == [problem.n_train]
    size = type(problem).default_batch_size or max(1, problem.n_train // 4)
    sizes = [b.size for b in problem.train_batches(size, torch.Generator().manual_seed(0))]
    assert sum(sizes) == problem.n_train and max(sizes) <= size


def test_loss_and_evaluation_are_finite(name):
    problem = smoke_problem(name)
    objective = problem.hierarchy(1, WorkCounter()).fine
    x = objective.initial_x()
    batch = next(iter(problem.train_batches(None, torch.Generator().manual_seed(0))))
    f, g = objective.loss_grad(x, batch)
    assert math.isfinite(f) and g.shape == x.shape and bool(torch.isfinite(g).all()) and float(g.norm()) > 0
    metrics = problem.evaluate(objective.fmodel(x))
    assert math.isfinite(metrics["test_loss"]) and math.isfinite(metrics["test_metric"])


def test_same_seed_same_data_and_initial_parameters(name):
    cls = PROBLEMS.get(name)
    hp = cls.params.validate(cls.smoke_params, name)
    xs, batches = [], []
    for _ in range(2):
        problem = cls(hp, seed=3, device=torch.device("cpu"), dtype=torch.float32)
        torch.manual_seed(5)
        xs.append(problem.hierarchy(1, WorkCounter()).fine.initial_x())
        batches.append(next(iter(problem.train_batches(None, torch.Generator().manual_seed(0)))))
    assert torch.equal(xs[0], xs[1])
    tensors = [[v for v in vars(b).values() if isinstance(v, torch.Tensor)] for b in batches]
    assert tensors[0] and all(torch.equal(a, b) for a, b in zip(*tensors))


def test_levels_cost_less_and_restriction_inverts_prolongation(name):
    problem = smoke_problem(name)
    levels = min(problem.max_levels(), 3)
    hierarchy = problem.hierarchy(levels, WorkCounter())
    ratios = [o.cost_ratio for o in hierarchy.objectives]
    assert ratios[0] == 1.0 and all(a > b > 0 for a, b in zip(ratios, ratios[1:])), ratios
    gen = torch.Generator().manual_seed(0)
    for l, transfer in enumerate(hierarchy.transfers):
        coarse, fine = hierarchy.objectives[l + 1], hierarchy.objectives[l]
        y = torch.randn(coarse.n, generator=gen)
        p = transfer.prolongate(y)
        assert p.shape == (fine.n,) and transfer.restrict_grad(torch.randn(fine.n, generator=gen)).shape == (coarse.n,)
        torch.testing.assert_close(transfer.restrict(p), y)
