"""No method pays twice for the same point: two consecutive charged evaluations of one objective
at an identical x on the same batch are a bug in the accounting (the second is free to keep).

Why: ``torch.optim.LBFGS`` with one iteration per runner step re-evaluated the point its line
search had just evaluated (35 of 79 evaluations on Rosenbrock), which made L-BFGS look up to 2×
more expensive than it is. The objective is instrumented, every method runs a few steps on a
small problem, and every pair of consecutive ``loss``/``loss_grad`` calls per objective is
checked (Hessian-vector products at the iterate are a different quantity and not compared).
"""

from __future__ import annotations

import pytest
import torch

from ml2bench.core.config import RunConfig
from ml2bench.core.objective import Objective, same_batch
from ml2bench.core.runner import run
from ml2bench.methods import METHODS
from ml2bench.problems.grid.testproblems import grid_hierarchy


class RepeatLog:
    """Wraps Objective.loss / loss_grad and records consecutive repeats per objective."""

    def __init__(self, monkeypatch) -> None:
        self.last: dict[int, tuple[torch.Tensor, object]] = {}
        self.keep: list[object] = []  # keeps batches alive, so identity checks stay meaningful
        self.repeats: list[str] = []
        self.calls = 0
        for name in ("loss", "loss_grad"):
            monkeypatch.setattr(Objective, name, self._wrap(getattr(Objective, name), name))

    def _wrap(self, fn, name):
        log = self

        def wrapped(obj, x, batch):
            log.calls += 1
            prev = log.last.get(id(obj))
            if prev is not None and torch.equal(prev[0], x) and same_batch(prev[1], batch):
                log.repeats.append(f"call {log.calls}: {name} at level {obj.level} repeats the previous point")
            log.last[id(obj)] = (x.detach().clone(), batch)
            log.keep.append(batch)
            return fn(obj, x, batch)

        return wrapped


RUNNER_METHODS = {
    "sgd": {},
    "adam": {},
    "lbfgs": {},
    "tr": {},
    "tr-lsr1": {"qn": "lsr1"},
    "tr-hessian": {"model": "hessian", "cg_max_iter": 3},
    "schwarz": {"subdomains": 3, "local_steps": 5},
}


@pytest.mark.parametrize("label", sorted(RUNNER_METHODS))
def test_single_level_and_schwarz_never_repeat_a_point(label, small_mlp, monkeypatch):
    log = RepeatLog(monkeypatch)
    small_mlp.update(method=label.split("-")[0], method_params=RUNNER_METHODS[label], budget={"iterations": 6})
    result = run(RunConfig.from_dict(small_mlp))
    assert result.status in ("budget_exhausted", "ok", "stopped"), result.summary["error"].iloc[0]
    assert log.calls >= 6
    assert not log.repeats, log.repeats[:5]


MULTILEVEL = {
    "rmtr": {},
    "rmtr-hessian": {"model": "hessian", "cg_max_iter": 3},
    "mgopt": {},
    "mgopt-tr": {"smoother": "tr"},
}


@pytest.mark.parametrize("label", sorted(MULTILEVEL))
def test_multilevel_methods_never_repeat_a_point(label, monkeypatch):
    log = RepeatLog(monkeypatch)
    H, batch = grid_hierarchy("fas", 15, 2, levels=3)
    m = METHODS.get(label.split("-")[0])(H, H.fine.initial_x(), {"levels": 3, **MULTILEVEL[label]})
    for _ in range(4):
        if m.step(batch).stops:
            break
    assert log.calls >= 4
    assert not log.repeats, log.repeats[:5]
