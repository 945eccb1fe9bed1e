"""Equal work (docs/protocol.md): no run is charged past its budget, cycle methods report progress
inside a cycle, additive Schwarz carries a parallel critical-path count, and the cost measurement of
Hessian-vector products is no unpaid work inside the timed training."""

from __future__ import annotations

import pytest
import torch

from ml2bench.analysis import tables
from ml2bench.core.config import RunConfig
from ml2bench.core.objective import BudgetExhausted, WorkCounter
from ml2bench.core.runner import run
from ml2bench.methods import METHODS

TINY_RESNET = {"width": 8, "depth": 2, "n_train": 300, "n_val": 100, "n_test": 100}


def _run(method: str, budget: dict, method_params: dict | None = None, eval_interval: float = 1.0, **problem):
    levels = {"levels": 2} if METHODS.get(method).levels_required({}) > 1 else {}
    return run(
        RunConfig.from_dict(
            {
                "problem": "resnet",
                "method": method,
                "seed": 0,
                "threads": 1,
                "eval_interval": eval_interval,
                "problem_params": {**TINY_RESNET, **problem},
                "method_params": {**levels, **(method_params or {})},
                "budget": budget,
            }
        )
    )


def test_the_counter_refuses_an_evaluation_past_its_limit():
    c = WorkCounter(limits={"work_units": 2.0})
    c.charge(0, 1.0, 1.0)
    c.charge(1, 1.0, 0.5)
    with pytest.raises(BudgetExhausted, match="work_units budget 2"):
        c.charge(0, 1.0, 1.0)  # 2.5 > 2: refused, and nothing charged
    assert (c.grad_evals, c.work_units, c.by_level) == (2.0, 1.5, {0: 1.0, 1: 1.0})
    c.charge(1, 1.0, 0.5)  # exactly at the limit: allowed
    assert c.work_units == 2.0
    g = WorkCounter(limits={"grad_evals": 1.0})
    g.charge(0, 0.75, 1.0)
    with pytest.raises(BudgetExhausted):
        g.charge(1, 0.5, 0.1)
    with g.unlimited():  # the local phase of a multi-rank Schwarz run
        g.charge(1, 0.5, 0.1)
    assert g.grad_evals == 1.25 and g.limits == {"grad_evals": 1.0}


@pytest.mark.parametrize("method", METHODS.names())
def test_no_method_is_charged_past_its_work_budget(method):
    """Every registered method, on a budget that ends inside a step (7.3 work units: a line search,
    a V-cycle or a Schwarz local phase is longer than what is left): the run stops at the budget,
    never above it, and its records end there (before: Schwarz 52 of 30, MG/OPT +5.3)."""
    budget = 7.3
    result = _run(method, {"work_units": budget})
    s, h = result.summary.iloc[0], result.history
    assert s["status"] == "budget_exhausted" and s["stop_reason"] == "budget:work_units", s["error"]
    assert s["work_units"] <= budget * (1 + 1e-9)
    assert s["work_units"] > budget - 1.0  # used: the last refused evaluation costs at most one full batch
    assert h["work_units"].iloc[-1] == s["work_units"] and (h["work_units"] <= budget * (1 + 1e-9)).all()
    assert s["final_test_metric"] == h["test_metric"].iloc[-1]


def test_a_grad_evals_budget_is_enforced_the_same_way():
    s = _run("lbfgs", {"grad_evals": 4.5}).summary.iloc[0]
    assert s["stop_reason"] == "budget:grad_evals" and 3.5 < s["grad_evals"] <= 4.5


@pytest.mark.parametrize("method", ["rmtr", "mgopt"])
def test_cycle_methods_report_inside_a_cycle_at_no_charge(method):
    """Evaluation points inside a V-cycle (after each fine smoothing iteration and coarse
    correction, and before each coarse phase): several per step, and a point whose work gap to the
    previous one spans a coarse phase has resolution 0 (the iterate did not move in between). The
    points are uncharged: the run is the same with an evaluation interval of 1000."""
    fine = _run(method, {"iterations": 3}, eval_interval=0.25)
    coarse = _run(method, {"iterations": 3}, eval_interval=1000.0)
    h = fine.history
    assert h.groupby("iteration").size().max() >= 3  # before: one point per step
    long_gaps = h["work_units"].diff() > 2.0  # a coarse phase (coarse steps up to 50 here)
    assert long_gaps.any()
    assert (h.loc[long_gaps, "work_units_resolution"] == 0).all()
    assert h["work_units_resolution"].max() <= 1.0 + 1e-9  # at most one fine smoothing iteration
    for col in ("work_units", "grad_evals", "final_train_loss", "final_test_metric"):
        assert fine.summary[col].iloc[0] == coarse.summary[col].iloc[0], col


def test_a_budget_inside_a_cycle_ends_at_the_last_checkpoint():
    """The run ends where the cycle was cut: the last smoothing iteration or coarse correction that
    completed, not the start of the cycle (RMTR's first cycle here costs about 20 work units)."""
    short = _run("rmtr", {"work_units": 4.0}).history
    assert short["iteration"].iloc[-1] == 0  # inside the first cycle
    assert short["train_loss"].iloc[-1] < short["train_loss"].iloc[0]


def test_additive_schwarz_records_serial_and_parallel_work():
    """Local SGD with a fixed number of evaluations and no globalisation: per outer iteration each
    of K subdomains evaluates ``local_steps`` times (1 work unit each: a full forward/backward). The
    serial count charges K · local_steps, the critical path local_steps (the SPQN authors' count,
    num_grad_evals = 2·epoch + epoch·num_local_steps, less the two global evaluations that
    globalisation ``none`` does not make)."""
    hp = {"globalization": "none", "local_solver": "sgd", "local_steps": 3, "subdomains": 2, "decomposition": "layers"}
    s = _run("schwarz", {"iterations": 4}, hp).summary.iloc[0]
    assert s["work_units"] == pytest.approx(4 * 2 * 3) and s["work_units_parallel"] == pytest.approx(4 * 3)
    # SPQN: parallel <= serial; equal with one subdomain and for the (sequential) multiplicative variant
    spqn = _run("schwarz", {"iterations": 3}, {"subdomains": 2}).history
    assert (spqn["work_units_parallel"] <= spqn["work_units"]).all()
    assert spqn["work_units_parallel"].iloc[-1] < spqn["work_units"].iloc[-1]
    for other in ({"subdomains": 1}, {"subdomains": 2, "variant": "multiplicative"}):
        h = _run("schwarz", {"iterations": 3}, other).history
        assert h["work_units_parallel"].equals(h["work_units"]), other


def test_time_to_target_has_both_conventions_at_the_same_hit():
    """The time-to-target table carries the serial and the critical-path work at the first evaluation
    that reaches the target (a claim's metric names its convention, docs/protocol.md)."""
    h = _run("schwarz", {"iterations": 4}, {"subdomains": 2}).history.assign(problem_id="resnet", point="default")
    target = float(h["train_loss"].iloc[2])  # reached at the third evaluation at the latest
    hit = h.loc[(h["train_loss"] <= target).idxmax()]
    ttt = tables.time_to_target(h, {"resnet": {"quantity": "train_loss", "value": target}}).iloc[0]
    assert ttt["reached"] and ttt["work_units_to_target"] == hit["work_units"]
    assert ttt["work_units_parallel_to_target"] == hit["work_units_parallel"] < hit["work_units"]


@pytest.mark.parametrize("method", [m for m in METHODS.names() if m != "schwarz"])
def test_other_methods_have_one_count(method):
    h = _run(method, {"work_units": 5.0}).history
    assert h["work_units_parallel"].equals(h["work_units"])


def test_hvp_cost_is_measured_before_the_timed_training(monkeypatch):
    """The operation count of a Hessian-vector product (one gradient and one product per level)
    runs before the clock starts and is not charged; before, it ran inside the first step."""
    import ml2bench.core.cost.opcount as opcount
    import ml2bench.core.runner as runner

    events: list[str] = []
    measure, start = opcount.hvp_cost_ratio, runner._Clock.start

    def spy_measure(objective, x, v, batch):
        events.append(f"measure {objective.counter.work_units}")
        return measure(objective, x, v, batch)

    def spy_start(clock):
        events.append("clock")
        start(clock)

    monkeypatch.setattr(opcount, "hvp_cost_ratio", spy_measure)
    monkeypatch.setattr(runner._Clock, "start", spy_start)
    s = _run("rmtr", {"iterations": 1}, {"model": "hessian", "cg_max_iter": 2}).summary.iloc[0]
    assert s["status"] == "budget_exhausted", s["error"]
    assert events[:3] == ["measure 0.0"] * 2 + ["clock"]  # both levels, uncharged, before the clock
    assert "measure" not in " ".join(events[3:])


def test_an_hvp_cost_measured_inside_training_is_charged():
    """Without a measurement beforehand (a method that does not declare uses_hvp, a direct call), the
    first product measures its cost and is charged for it: one gradient and one product more."""
    from ml2bench.core.cost.opcount import hvp_cost_ratio
    from ml2bench.problems import PROBLEMS

    cls = PROBLEMS.get("resnet")
    problem = cls(cls.params.validate(TINY_RESNET, "p"), seed=0, device=torch.device("cpu"), dtype=torch.float64)
    counter = WorkCounter()
    obj = problem.hierarchy(1, counter).fine
    batch = next(iter(problem.train_batches(None, torch.Generator().manual_seed(0))))
    x = obj.initial_x()
    ratio = hvp_cost_ratio(obj, x, torch.ones_like(x), batch)
    obj.hvp(x, torch.randn_like(x), batch)
    assert obj.hvp_ratio == ratio
    assert counter.work_units == pytest.approx(1 + 2 * ratio) and counter.grad_evals == 3
    obj.hvp(x, torch.randn_like(x), batch)
    assert counter.work_units == pytest.approx(1 + 3 * ratio)
