"""The training loop: budgets, determinism, divergence, failures and work accounting."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from ml2bench.core.config import RunConfig
from ml2bench.core.params import spec
from ml2bench.core.records import HISTORY_COLUMNS
from ml2bench.core.runner import derive_seeds, run
from ml2bench.methods import METHODS, Method, StepResult


def test_history_and_summary_schema(small_mlp):
    result = run(RunConfig.from_dict(small_mlp))
    h, s = result.history, result.summary
    assert list(h.columns) == list(HISTORY_COLUMNS)
    assert len(s) == 1 and s["status"].iloc[0] == "budget_exhausted"
    assert h["iteration"].iloc[0] == 0 and h["grad_evals"].iloc[0] == 0
    assert (h["work_units"].diff().dropna() > 0).all()
    assert (h["train_time_s"].diff().dropna() >= 0).all()
    # energy is not measurable here: NaN with source "none", never an estimate
    if s["energy_source"].iloc[0] == "none":
        assert h["energy_j"].isna().all()
    for key in ("git_commit", "torch_version", "cpu_model", "config_hash", "torch_threads"):
        assert key in s.columns
    assert s["final_test_metric"].iloc[0] == h["test_metric"].iloc[-1]


def test_epoch_budget_and_work_for_minibatches(small_mlp):
    result = run(RunConfig.from_dict(small_mlp))
    h = result.history
    # 3 epochs over 256 samples: single-level, so work units equal gradient evaluations
    assert h["epoch"].iloc[-1] == pytest.approx(3.0)
    assert h["grad_evals"].iloc[-1] == pytest.approx(3.0)
    assert h["work_units"].iloc[-1] == pytest.approx(h["grad_evals"].iloc[-1])
    assert result.summary["iterations"].iloc[0] == 3 * math.ceil(256 / 64)


@pytest.mark.parametrize("key, value", [("work_units", 2.5), ("iterations", 5), ("grad_evals", 1.0)])
def test_other_budgets_stop_the_run(small_mlp, key, value):
    small_mlp["budget"] = {key: value}
    s = run(RunConfig.from_dict(small_mlp)).summary
    assert s["status"].iloc[0] == "budget_exhausted"
    got = s[key].iloc[0]
    if key == "iterations":
        assert got == value  # stops at the first step that reaches it
    else:  # counted by the work counter, which refuses the evaluation that would exceed it
        assert value - 64 / 256 < got <= value


def test_same_seed_same_history_other_seed_differs(small_mlp):
    a = run(RunConfig.from_dict(small_mlp)).history
    b = run(RunConfig.from_dict(small_mlp)).history
    cols = ["epoch", "iteration", "grad_evals", "work_units", "train_loss", "step_loss", "test_loss", "test_metric"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    small_mlp["seed"] = 1
    c = run(RunConfig.from_dict(small_mlp)).history
    assert not a["train_loss"].equals(c["train_loss"])


def test_seeds_are_derived_per_purpose():
    s0, s1 = derive_seeds(0), derive_seeds(1)
    assert len(set(s0.values())) == 3 and s0 != s1 and derive_seeds(0) == s0


def test_divergence_is_a_result_not_a_crash(small_mlp):
    small_mlp.update(method="sgd", method_params={"lr": 1e6})
    result = run(RunConfig.from_dict(small_mlp))
    assert result.status == "diverged"
    assert result.summary["iterations"].iloc[0] < 12  # stopped early


class _Boom(Method):
    name = "boom"
    description = "raises on the second step (test only)"
    params = spec()

    def __init__(self, hierarchy, x0, hp):
        super().__init__(hierarchy, x0, hp)
        self.calls = 0

    def step(self, batch):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("kaboom")
        value, _ = self.hierarchy.fine.loss_grad(self.x, batch)
        return StepResult(value)


def test_exception_is_recorded_as_failed(small_mlp, monkeypatch):
    monkeypatch.setitem(METHODS._items, "boom", _Boom)
    small_mlp["method"] = "boom"
    result = run(RunConfig.from_dict(small_mlp))
    assert result.status == "failed"
    assert "RuntimeError: kaboom" in result.summary["error"].iloc[0]
    assert len(result.history) >= 1  # the initial evaluation is kept


class _Counting(Method):
    """Evaluates the loss on the fine level three times per step, once with a gradient."""

    name = "counting"
    description = "test only"
    params = spec()

    def step(self, batch):
        obj = self.hierarchy.fine
        obj.loss(self.x, batch)
        obj.loss(self.x, batch)
        value, _ = obj.loss_grad(self.x, batch)
        return StepResult(value)


def test_every_evaluation_is_charged(small_mlp, monkeypatch):
    monkeypatch.setitem(METHODS._items, "counting", _Counting)
    small_mlp.update(method="counting", batch_size=32, budget={"iterations": 4})
    s = run(RunConfig.from_dict(small_mlp)).summary
    assert s["grad_evals"].iloc[0] == pytest.approx(4 * 3 * 32 / 256)


def test_lbfgs_counts_line_search_evaluations(small_mlp, monkeypatch):
    """Charged evaluations equal the evaluations actually made during the steps (a counting
    wrapper around the objective), no more (no re-charged points) and no fewer (every
    line-search trial is charged); full batch, so each charges 1."""
    from ml2bench.core.objective import Objective

    made = {"inside": False, "calls": 0}
    lbfgs = METHODS.get("lbfgs")
    step = lbfgs.step

    def counting_step(self, batch):
        made["inside"] = True
        try:
            return step(self, batch)
        finally:
            made["inside"] = False

    def counting(fn):
        def wrapped(obj, x, batch):
            made["calls"] += made["inside"]
            return fn(obj, x, batch)

        return wrapped

    monkeypatch.setattr(lbfgs, "step", counting_step)
    for name in ("loss", "loss_grad"):
        monkeypatch.setattr(Objective, name, counting(getattr(Objective, name)))
    small_mlp.update(method="lbfgs", budget={"iterations": 5})
    s = run(RunConfig.from_dict(small_mlp)).summary
    assert s["iterations"].iloc[0] == 5
    # measured 9 evaluations for 5 iterations (initial point + line-search trials; 13 with torch.optim.LBFGS)
    assert made["calls"] > 5
    assert s["grad_evals"].iloc[0] == made["calls"]


def test_cuda_request_without_cuda_is_a_clear_error(small_mlp):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    from ml2bench.core.params import ConfigError

    small_mlp["device"] = "cuda"
    with pytest.raises(ConfigError, match="device 'cuda' requested"):
        run(RunConfig.from_dict(small_mlp))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run(small_mlp):
    small_mlp["device"] = "cuda"
    result = run(RunConfig.from_dict(small_mlp))
    assert result.status == "budget_exhausted" and result.summary["gpu_model"].iloc[0] != "none"


def test_run_stops_at_its_target_on_the_same_trajectory(small_mlp):
    """Section ``target``: the run stops at the first evaluation point that reaches it (status
    target_reached, stop reason target), and up to there its history is the full run's, so its time to
    target is the full run's; a target never reached leaves the run to its budget."""
    small_mlp["budget"] = {"epochs": 6}
    full = run(RunConfig.from_dict(small_mlp))
    h = full.history
    goal = float(h["test_metric"].iloc[len(h) // 2])  # reached half-way, not before
    first = int((h["test_metric"] >= goal).idxmax())
    assert 0 < first < len(h) - 1
    stopped = run(RunConfig.from_dict({**small_mlp, "target": {"quantity": "test_metric", "value": goal}}))
    s = stopped.summary.iloc[0]
    assert (s["status"], s["stop_reason"]) == ("target_reached", "target")
    cols = ["epoch", "iteration", "grad_evals", "work_units", "train_loss", "test_metric"]
    pd.testing.assert_frame_equal(stopped.history[cols], h[cols].iloc[: first + 1])
    assert s["work_units"] == h["work_units"].iloc[first] < full.summary["work_units"].iloc[0]

    never = run(RunConfig.from_dict({**small_mlp, "target": {"quantity": "test_metric", "value": 1.01}}))
    assert never.summary["stop_reason"].iloc[0] == "budget:epochs"
    pd.testing.assert_frame_equal(never.history[cols], h[cols])


def test_target_section_is_validated_and_keeps_old_hashes(small_mlp):
    from ml2bench.core.params import ConfigError

    plain = RunConfig.from_dict(small_mlp)
    assert plain.target == {} and RunConfig.from_dict({**small_mlp, "target": {}}).hash() == plain.hash()
    loss = RunConfig.from_dict({**small_mlp, "target": {"quantity": "train_loss", "value": 0.1}})
    acc = RunConfig.from_dict({**small_mlp, "target": {"quantity": "val_metric", "value": 0.9}})
    assert loss.target["direction"] == "below" and acc.target["direction"] == "above"  # accuracy: higher is better
    assert loss.hash() != plain.hash()
    for bad, key in [
        ({"quantity": "test_acc", "value": 0.9}, "quantity"),
        ({"quantity": "test_metric"}, "value"),
        ({"value": 0.9}, "quantity"),
        ({"quantity": "test_metric", "value": 0.9, "direction": "up"}, "direction"),
        ({"quantity": "test_metric", "value": 0.9, "when": 1}, "when"),
    ]:
        with pytest.raises(ConfigError, match=key):
            RunConfig.from_dict({**small_mlp, "target": bad})


def test_a_target_reached_inside_a_step_wins_over_the_budget_that_ends_it():
    """RMTR's first V-cycle is cut by the work budget (iterations 0), after evaluation points inside it
    (checkpoints): with a target that the first of them meets, the run's reason is the target it
    reached first, not the budget it ran out of later, and its history is the same."""
    raw = {
        "problem": "resnet",
        "method": "rmtr",
        "method_params": {"levels": 3},
        "problem_params": {"n_train": 256, "n_test": 128, "width": 8, "depth": 4},
        "budget": {"work_units": 10},
        "eval_interval": 1.0,
    }
    base = run(RunConfig.from_dict(raw))
    h = base.history
    assert base.summary["stop_reason"].iloc[0] == "budget:work_units" and base.summary["iterations"].iloc[0] == 0
    assert len(h) >= 3 and h["train_loss"].iloc[1] < h["train_loss"].iloc[0]  # a checkpoint inside the step
    goal = float(h["train_loss"].iloc[1])
    stopped = run(RunConfig.from_dict({**raw, "target": {"quantity": "train_loss", "value": goal}}))
    assert stopped.summary["stop_reason"].iloc[0] == "target"
    cols = ["iteration", "grad_evals", "work_units", "train_loss", "test_metric"]
    pd.testing.assert_frame_equal(stopped.history[cols], h[cols])


def test_a_target_on_a_quantity_the_problem_never_measures_is_refused():
    from ml2bench.core.params import ConfigError

    with pytest.raises(ConfigError, match=r"'val_metric' is never measured on problem 'pinn_poisson'"):
        RunConfig.from_dict(
            {"problem": "pinn_poisson", "method": "lbfgs", "target": {"quantity": "val_metric", "value": 0.1}}
        )


def test_pinn_hashes_stay_with_the_adaptive_activation_off():
    """adaptive_slope = 0 (the default) is the network without the option, so its runs keep their config
    hashes: results and checkpoints of earlier PINN runs stay valid (measured at 63f16b4, before the
    option: pinn_poisson/lbfgs df3b63bf86188bb4, pinn_burgers/lbfgs 94750361afd7f93a)."""
    for problem, before in (("pinn_poisson", "df3b63bf86188bb4"), ("pinn_burgers", "94750361afd7f93a")):
        config = RunConfig.from_dict({"problem": problem, "method": "lbfgs"})
        assert config.problem_params["adaptive_slope"] == 0.0 and config.hash() == before
        on = RunConfig.from_dict({"problem": problem, "method": "lbfgs", "problem_params": {"adaptive_slope": 10}})
        assert on.hash() != before
