"""Comparison-table and performance-profile math on hand-made tables with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ml2bench.analysis import tables as tb

INF = math.inf


def _history(problem_id, method, seed, losses, metrics=None, point="default", energy=None):
    n = len(losses)
    wu = np.arange(n, dtype=float)
    return pd.DataFrame(
        {
            "problem_id": problem_id,
            "problem": "mlp",
            "method": method,
            "point": point,
            "seed": seed,
            "epoch": wu / 2,
            "iteration": np.arange(n) * 10,
            "grad_evals": wu,
            "work_units": wu,
            "train_time_s": wu * 0.5,
            "energy_j": energy if energy is not None else np.full(n, np.nan),
            "train_loss": losses,
            "test_loss": losses,
            "test_metric": metrics if metrics is not None else np.linspace(0.1, 0.9, n),
        }
    )


def _summary(history):
    rows = []
    for (pid, m, pt, s), h in history.groupby(tb.RUN_KEYS):
        last = h.iloc[-1]
        rows.append(
            {
                "problem_id": pid,
                "problem": "mlp",
                "method": m,
                "point": pt,
                "seed": s,
                "status": "budget_exhausted",
                "metric_name": "accuracy",
                "metric_higher_is_better": True,
                "final_test_metric": last["test_metric"],
                "final_train_loss": last["train_loss"],
            }
        )
    return pd.DataFrame(rows)


# --- quantiles ---------------------------------------------------------------------------------
def test_quantile_linear_and_inf():
    assert tb.quantile([1.0, 3.0], 0.5) == 2.0
    assert tb.quantile([4.0, 1.0, 2.0, 3.0], 0.25) == pytest.approx(1.75)
    assert tb.quantile([1.0, 2.0, INF], 0.5) == 2.0  # median of a finite middle
    assert tb.quantile([1.0, 2.0, INF], 0.75) == INF  # touches inf
    assert tb.quantile([1.0, INF], 0.5) == INF
    assert tb.quantile([INF, INF], 0.5) == INF  # not nan (inf - inf)
    assert math.isnan(tb.quantile([math.nan, math.nan], 0.5))  # not measured stays not measured
    assert tb.quantile([math.nan, 5.0], 0.5) == 5.0
    assert tb.median_iqr([1.0, 2.0, 3.0, 4.0, 5.0]) == (3.0, 2.0, 4.0)


# --- time to target ----------------------------------------------------------------------------
def test_first_crossing_below_is_first_not_interpolated():
    h = _history("p", "sgd", 0, [2.0, 1.0, 0.5, 0.4, 0.6])
    t = tb.time_to_target(h, {"p": {"quantity": "train_loss", "value": 0.5, "direction": "below"}})
    row = t.iloc[0]
    assert bool(row["reached"])
    assert row["work_units_to_target"] == 2.0  # 0.5 <= 0.5 at the third point
    assert row["time_to_target_s"] == 1.0
    assert row["epochs_to_target"] == 1.0
    assert math.isnan(row["energy_to_target_j"])  # no counter: not measured, never 0/inf


def test_first_crossing_above_and_unsorted_history():
    h = _history("p", "adam", 0, [2.0, 1.0, 0.9, 0.8], metrics=[0.1, 0.5, 0.95, 0.97])
    h = h.iloc[::-1]  # order must not matter
    t = tb.time_to_target(h, {"p": {"quantity": "test_metric", "value": 0.9, "direction": "above"}})
    assert t.iloc[0]["work_units_to_target"] == 2.0


def test_not_reached_is_inf_and_energy_counted():
    h = _history("p", "sgd", 0, [2.0, 1.5, 1.2], energy=np.array([0.0, 10.0, 20.0]))
    t = tb.time_to_target(h, {"p": {"quantity": "train_loss", "value": 0.5}})
    row = t.iloc[0]
    assert not row["reached"]
    for col in ("work_units_to_target", "time_to_target_s", "epochs_to_target", "energy_to_target_j"):
        assert row[col] == INF
    t2 = tb.time_to_target(h, {"p": {"quantity": "train_loss", "value": 1.5}})
    assert t2.iloc[0]["energy_to_target_j"] == 10.0


def test_missing_target_is_an_error():
    h = _history("p", "sgd", 0, [1.0])
    with pytest.raises(ValueError, match="no target for problem 'p'"):
        tb.time_to_target(h, {"q": {"quantity": "train_loss", "value": 1.0}})


# --- comparison table --------------------------------------------------------------------------
def test_comparison_table_median_iqr_success():
    target = {"p": {"quantity": "train_loss", "value": 0.5, "direction": "below"}}
    hs = [
        _history("p", "sgd", 0, [2.0, 0.4, 0.3]),  # reached at wu 1
        _history("p", "sgd", 1, [2.0, 1.0, 0.5]),  # reached at wu 2
        _history("p", "sgd", 2, [2.0, 1.0, 0.9]),  # not reached
        _history("p", "adam", 0, [2.0, 1.0, 1.0]),
        _history("p", "adam", 1, [2.0, 1.0, 1.0]),
    ]
    history = pd.concat(hs, ignore_index=True)
    summary = _summary(history)
    table = tb.comparison_table(summary, tb.time_to_target(history, target)).set_index("solver")
    sgd, adam = table.loc["sgd"], table.loc["adam"]
    assert sgd["n_runs"] == 3 and adam["n_runs"] == 2
    assert sgd["success_rate"] == pytest.approx(2 / 3)
    assert adam["success_rate"] == 0.0
    assert sgd["work_units_to_target_median"] == 2.0  # sorted [1, 2, inf]
    assert sgd["work_units_to_target_q25"] == 1.5
    assert sgd["work_units_to_target_q75"] == INF
    assert adam["work_units_to_target_median"] == INF
    assert sgd["final_train_loss_median"] == 0.5
    assert math.isnan(sgd["energy_to_target_j_median"])  # no counter anywhere
    md = tb.to_markdown(table.reset_index(), target)
    assert "| sgd | 3 | 67% |" in md and "∞" in md and "n/a" in md and "train_loss ≤ 0.5" in md
    tex = tb.to_latex(table.reset_index(), target)
    assert r"$\infty$" in tex and r"\begin{tabular}" in tex and "67\\%" in tex


def test_solver_labels_with_points():
    f = pd.DataFrame({"method": ["sgd", "sgd", "adam"], "point": ["lr~0.1", "lr~0.01", "default"]})
    assert list(tb.solver_labels(f)) == ["sgd[lr~0.1]", "sgd[lr~0.01]", "adam"]


# --- performance profiles ----------------------------------------------------------------------
def _costs():
    # t[p, s]: A best on p1, B best on p2 and p3; nobody solves p4.
    return pd.DataFrame(
        {"A": [1.0, 4.0, INF, INF], "B": [2.0, 2.0, 3.0, INF]},
        index=pd.Index(["p1", "p2", "p3", "p4"], name="problem_id"),
    )


def test_performance_ratios():
    r = tb.performance_ratios(_costs())
    assert list(r["A"]) == [1.0, 2.0, INF, INF]
    assert list(r["B"]) == [2.0, 1.0, 1.0, INF]


def test_rho_steps():
    r = tb.performance_ratios(_costs())
    rho = tb.rho(r, [1.0, 1.5, 2.0, 100.0])
    assert list(rho["A"]) == [0.25, 0.25, 0.5, 0.5]
    assert list(rho["B"]) == [0.5, 0.5, 0.75, 0.75]  # p4 unsolved by anyone: never counts
    taus = tb.profile_taus(r)
    assert taus[0] == 1.0 and 2.0 in taus and taus[-1] > 2.0


def test_zero_cost_and_ties():
    costs = pd.DataFrame({"A": [0.0, 3.0], "B": [0.0, 3.0], "C": [1.0, INF]}, index=["p1", "p2"])
    r = tb.performance_ratios(costs)
    assert list(r["A"]) == [1.0, 1.0] and list(r["B"]) == [1.0, 1.0]
    assert list(r["C"]) == [INF, INF]  # worse than a zero-cost best


def test_profiles_from_table_missing_solver_counts_as_failure():
    table = pd.DataFrame(
        {
            "problem_id": ["p1", "p1", "p2"],
            "solver": ["A", "B", "A"],
            "work_units_to_target_median": [1.0, 3.0, 2.0],
            "time_to_target_s_median": [1.0, 0.5, 1.0],
        }
    )
    prof = tb.profiles(table)
    wu = prof[prof["cost"] == "work_units_to_target"].pivot(index="tau", columns="solver", values="rho")
    assert wu.loc[1.0, "A"] == 1.0
    assert wu.loc[1.0, "B"] == 0.0 and wu.loc[3.0, "B"] == 0.5  # B was not run on p2
    t = prof[prof["cost"] == "time_to_target_s"].pivot(index="tau", columns="solver", values="rho")
    assert t.loc[1.0, "B"] == 0.5 and t.loc[1.0, "A"] == 0.5 and t.loc[2.0, "A"] == 1.0


def _points_table(rows, selection="val_metric", higher=True):
    cols = ["problem_id", "method", "point", "work_units_to_target_median", "final_selection_median"]
    cols.append("final_metric_median")
    table = pd.DataFrame(rows, columns=cols)
    table["solver"] = tb.solver_labels(table)
    table["selection_quantity"] = selection
    table["selection_higher_is_better"] = higher
    table["time_to_target_s_median"] = 1.0
    return table


def test_profiles_use_each_methods_best_point():
    table = _points_table(
        [
            ("p1", "sgd", "lr~0.1", 8.0, 0.9, 0.9),
            ("p1", "sgd", "lr~0.01", 2.0, 0.9, 0.9),
            ("p1", "adam", "default", 4.0, 0.9, 0.9),
            ("p2", "sgd", "default", INF, 0.9, 0.9),
            ("p2", "adam", "default", 1.0, 0.9, 0.9),
        ]
    )
    targets = {p: {"quantity": "val_metric", "value": 0.8, "direction": "above"} for p in ("p1", "p2")}
    costs = tb.cost_matrix(table, "work_units_to_target", targets)
    assert costs.loc["p1", "sgd"] == 2.0 and costs.loc["p2", "sgd"] == INF
    labels = tb.solver_labels(table)
    assert list(labels) == ["sgd[lr~0.1]", "sgd[lr~0.01]", "adam", "sgd", "adam"]  # per problem
    assert set(tb.profiles(table, targets)["solver"]) == {"sgd", "adam"}


def test_best_point_is_never_chosen_on_a_test_column():
    """Classification: fewest work units to the validation target, then the better final validation
    accuracy — a point with the better *test* accuracy loses. PINNs (target on the test relative L2,
    no validation split): the lower final training loss, whatever reached the test target first."""
    cls = _points_table(
        [
            ("c", "sgd", "lr~0.1", 5.0, 0.95, 0.99),  # same work to target, better test accuracy
            ("c", "sgd", "lr~0.01", 5.0, 0.97, 0.90),  # better validation accuracy: chosen
            ("c", "sgd", "lr~1", 9.0, 0.99, 0.99),  # slower to the validation target
        ]
    )
    best = tb.select_points(cls, {"c": {"quantity": "val_metric", "value": 0.9, "direction": "above"}})
    assert list(best["point"]) == ["lr~0.01"] and list(best["n_points"]) == [3]
    pinn = _points_table(
        [
            ("p", "adam", "lr~0.003", 100.0, 0.02, 0.01),  # first to the test target, higher train loss
            ("p", "adam", "lr~0.001", INF, 0.01, 0.2),  # lower final training loss: chosen
        ],
        selection="train_loss",
        higher=False,
    )
    best = tb.select_points(pinn, {"p": {"quantity": "test_metric", "value": 0.05, "direction": "below"}})
    assert list(best["point"]) == ["lr~0.001"]
    assert tb.cost_matrix(pinn, "work_units_to_target", {"p": {"quantity": "test_metric"}}).loc["p", "adam"] == INF


def test_a_target_reached_past_the_work_budget_is_no_success():
    h = _history("p", "sgd", 0, [2.0, 1.0, 0.9, 0.3])  # reaches 0.5 at 3 work units only
    target = {"p": {"quantity": "train_loss", "value": 0.5}}
    key = ("p", "sgd", "default", 0)
    assert bool(tb.time_to_target(h, target).iloc[0]["reached"])
    row = tb.time_to_target(h, target, {key: 2.5}).iloc[0]
    assert not row["reached"] and row["work_units_to_target"] == INF
    summary = _summary(h).assign(budget='{"work_units": 2.5}')
    assert tb.work_budgets(summary) == {key: 2.5}
    assert tb.time_to_target(h, target, {key: 3.0}).iloc[0]["work_units_to_target"] == 3.0  # at the budget: counts


def test_resolution_and_test_metric_at_the_target():
    h = _history("p", "rmtr", 0, [2.0, 1.0, 0.4, 0.3], metrics=[0.1, 0.5, 0.8, 0.9])
    h["work_units"] = [0.0, 1.0, 12.0, 13.0]  # a coarse phase between the 2nd and 3rd point
    h["work_units_resolution"] = [0.0, 0.0, 0.0, 1.0]  # ... during which the iterate did not move
    ttt = tb.time_to_target(h, {"p": {"quantity": "train_loss", "value": 0.5}})
    row = ttt.iloc[0]
    assert row["work_units_to_target"] == 12.0 and row["work_units_resolution"] == 0.0
    assert row["max_resolution_wu"] == 1.0 and row["test_metric_at_target"] == 0.8
    table = tb.comparison_table(_summary(h), ttt)
    assert table.iloc[0]["resolution_wu"] == 1.0
    assert "| resolution (WU) |" in tb.to_markdown(table)
