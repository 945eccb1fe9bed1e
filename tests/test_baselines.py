"""SGD, Adam and L-BFGS on the flat vector behave as torch.optim on the module's parameters."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from ml2bench.core.config import RunConfig
from ml2bench.core.objective import WorkCounter
from ml2bench.core.runner import run
from ml2bench.methods import METHODS
from ml2bench.problems import PROBLEMS


def _problem():
    cls = PROBLEMS.get("mlp")
    hp = cls.params.validate({"n_train": 128, "n_test": 32, "width": 8}, "mlp")
    return cls(hp, seed=0, device=torch.device("cpu"), dtype=torch.float64)


def test_flat_adam_and_sgd_match_torch_optim_on_module():
    problem = _problem()
    for name, make in (
        ("adam", lambda p: torch.optim.Adam(p, lr=1e-2)),
        ("sgd", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
    ):
        torch.manual_seed(0)
        hierarchy = problem.hierarchy(1, WorkCounter())
        module = copy.deepcopy(hierarchy.fine.model)
        cls = METHODS.get(name)
        hp = cls.params.validate({"lr": 1e-2} if name == "adam" else {"lr": 0.1, "momentum": 0.9}, name)
        method = cls(hierarchy, hierarchy.fine.initial_x(), hp)
        opt = make(module.parameters())
        batches = list(problem.train_batches(32, torch.Generator().manual_seed(1)))
        for batch in batches:
            method.step(batch)
            opt.zero_grad()
            F.cross_entropy(module(batch.x), batch.y).backward()
            opt.step()
        reference = torch.cat([p.detach().reshape(-1) for p in module.parameters()])
        torch.testing.assert_close(method.x, reference, rtol=1e-10, atol=1e-12)


def test_each_baseline_reduces_the_loss(small_mlp):
    for name, hp, work in (("sgd", {"lr": 0.2}, 6), ("adam", {"lr": 1e-2}, 6), ("lbfgs", {}, 20)):
        small_mlp.update(method=name, method_params=hp, budget={"work_units": work})
        h = run(RunConfig.from_dict(small_mlp)).history
        assert h["train_loss"].iloc[-1] < 0.8 * h["train_loss"].iloc[0], name


def test_lbfgs_reports_convergence_at_a_stationary_point(small_mlp):
    small_mlp.update(method="lbfgs", method_params={"tolerance_grad": 1e3}, budget={"iterations": 50})
    result = run(RunConfig.from_dict(small_mlp))
    assert result.status == "ok" and result.summary["iterations"].iloc[0] == 1
