"""Quality regression: every smoke run of the methods in the reference (:mod:`ml2bench.sweep.quality`)
learns (floors independent of the code: accuracy ≥ 0.5 on 10 classes, PINN rel. L2 ≤ 0.9 < 1 = zero
predictor), and the sweep reproduces the committed reference ``ml2bench/sweep/quality_reference.csv``
row for row (regenerate with ``python -m ml2bench.sweep.quality --write`` when a change of a method's
numerics is intended, and say in the commit message which numbers moved; see the module docstring).
A registered method without reference rows is not run here: the contract tests check that it learns."""

from __future__ import annotations

import pandas as pd
import pytest

from ml2bench.sweep import quality


@pytest.fixture(scope="module")
def current(smoke_results) -> pd.DataFrame:
    """The smoke runs of the methods the reference covers (tests/conftest.py runs them once)."""
    return smoke_results[smoke_results["method"].isin(quality.compared_methods(quality.read_reference()))]


def test_sweep_matches_reference(current):
    assert quality.REFERENCE.is_file(), "no reference: run 'python -m ml2bench.sweep.quality --write'"
    report = quality.check(quality.read_reference(), current)
    if report.notes:
        print(report.text())  # shown with -rP / on failure: runs not in the reference are reported only
    assert report.ok, f"quality regression (tolerance: relative {quality.RTOL:g}):\n{report.text()}"


def test_no_run_fails(current):
    bad = current[~current["status"].isin(["ok", "budget_exhausted", "stopped"])]
    assert bad.empty, bad[["problem", "method", "seed", "status", "error"]].to_string()


def test_every_run_learned(current):
    """The floors, on the run just made: a method that stops learning fails here even if someone
    regenerated the reference."""
    assert not quality.floor_failures(current), "\n".join(quality.floor_failures(current))


def test_reference_learned_and_covers_the_sweep():
    """The committed reference clears the same floors and has exactly one row per (entry, seed)."""
    ref = quality.read_reference()
    assert not quality.floor_failures(ref), "\n".join(quality.floor_failures(ref))
    expected = {(e.problem, e.method, seed) for e in quality.sweep(quality.compared_methods(ref)) for seed in e.seeds}
    have = list(zip(ref["problem"], ref["method"], ref["seed"]))
    assert len(have) == len(set(have))
    assert set(have) == expected, (sorted(expected - set(have)), sorted(set(have) - expected))


def test_floors_reject_chance_level_runs():
    rows = pd.DataFrame(
        [
            {
                "problem": "mlp",
                "method": "sgd",
                "seed": 0,
                "status": "budget_exhausted",
                "metric_name": "accuracy",
                "final_test_metric": 0.16,
            },
            {
                "problem": "pinn_poisson",
                "method": "tr",
                "seed": 0,
                "status": "budget_exhausted",
                "metric_name": "rel_l2",
                "final_test_metric": 3.22,
            },
            {
                "problem": "pinn_poisson",
                "method": "adam",
                "seed": 0,
                "status": "budget_exhausted",
                "metric_name": "rel_l2",
                "final_test_metric": 0.95,
            },
            {
                "problem": "resnet",
                "method": "adam",
                "seed": 0,
                "status": "diverged",
                "metric_name": "accuracy",
                "final_test_metric": float("nan"),
                "error": "",
            },
            {
                "problem": "resnet",
                "method": "tr",
                "seed": 0,
                "status": "budget_exhausted",
                "metric_name": "accuracy",
                "final_test_metric": 0.7,
            },
            {
                "problem": "pinn_burgers",
                "method": "lbfgs",
                "seed": 0,
                "status": "ok",
                "metric_name": "rel_l2",
                "final_test_metric": 0.72,
            },
        ]
    )
    failures = quality.floor_failures(rows)
    assert [f.split(":")[0] for f in failures] == [
        "mlp/sgd/seed0",
        "pinn_poisson/tr/seed0",
        "pinn_poisson/adam/seed0",
        "resnet/adam/seed0",
    ]
    assert not quality.check(rows, rows).ok  # the floors are part of the check


def _reference() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "problem": "mlp",
                "method": "sgd",
                "seed": 0,
                "status": "budget_exhausted",
                "iterations": 12,
                "metric_name": "accuracy",
                "final_train_loss": 2.0,
                "final_test_loss": 2.1,
                "final_test_metric": 0.5,
                "grad_evals": 3.0,
                "work_units": 3.0,
                "method_params": '{"lr": 0.05}',
            },
            {
                "problem": "resnet",
                "method": "tr",
                "seed": 1,
                "status": "budget_exhausted",
                "iterations": 8,
                "metric_name": "accuracy",
                "final_train_loss": 1.0,
                "final_test_loss": 1.1,
                "final_test_metric": 0.6,
                "grad_evals": 9.0,
                "work_units": 7.5,
                "method_params": "{}",
            },
        ]
    )


def test_check_names_what_moved_and_by_how_much():
    ref = _reference()
    cur = ref.copy()
    cur.loc[1, "final_train_loss"] = 1.001  # +1e-3 relative: beyond 1e-4
    cur.loc[0, "final_test_metric"] = 0.5 * (1 + 1e-6)  # within tolerance
    report = quality.check(ref, cur)
    assert len(report.failures) == 1
    msg = report.failures[0]
    assert msg.startswith("resnet/tr/seed1: final_train_loss") and "+1.000e-03" in msg


def test_check_counters_exact_and_status():
    ref = _reference()
    cur = ref.copy()
    cur.loc[0, "iterations"] = 13
    cur.loc[1, "status"] = "diverged"
    cur.loc[1, "work_units"] = 7.6
    report = quality.check(ref, cur)
    text = report.text()
    assert "mlp/sgd/seed0: iterations 12 -> 13" in text
    assert "resnet/tr/seed1: status budget_exhausted -> diverged" in text
    assert "resnet/tr/seed1: work_units" in text


def test_missing_and_unknown_rows_fail():
    ref = _reference()
    extra = ref.iloc[[0]].assign(problem="pinn_burgers", method="tr", metric_name="rel_l2", final_test_metric=0.5)
    cur = pd.concat([ref.iloc[[0]], extra], ignore_index=True)
    report = quality.check(ref, cur)
    assert not report.ok
    assert any("pinn_burgers/tr/seed0: not in reference" in f for f in report.failures)
    assert any("resnet/tr/seed1: in reference but not run" in f for f in report.failures)
    assert quality.check(ref, ref.copy()).ok


def test_a_method_without_reference_rows_is_a_note_but_must_learn():
    """A newly registered method has no numbers to regress from: a note, not a failure; the floors
    still apply to its runs."""
    ref = _reference()
    new = ref.iloc[[0]].assign(method="rmsprop", final_train_loss=123.0)
    report = quality.check(ref, pd.concat([ref, new], ignore_index=True))
    assert report.ok and any("method rmsprop: no rows in the reference" in n for n in report.notes)
    assert report.text().endswith("quality: all runs match the reference")
    bad = pd.concat([ref, new.assign(final_test_metric=0.1)], ignore_index=True)
    assert quality.check(ref, bad).failures == [
        "floor: mlp/rmsprop/seed0: accuracy 0.1 < 0.5 (chance 0.1): not learned"
    ]


def test_the_sweep_is_the_methods_smoke_runs():
    """No hand-kept table: every registered method's smoke runs, at the problems' smoke sizes."""
    from ml2bench.methods import METHODS
    from ml2bench.problems import PROBLEMS

    entries = quality.sweep()
    assert {e.method for e in entries} == set(METHODS.names())
    for e in entries:
        assert e.problem_params == PROBLEMS.get(e.problem).smoke_params
        assert any(
            (r.problem, dict(r.budget), dict(r.params)) == (e.problem, e.budget, e.method_params)
            for r in METHODS.get(e.method).smoke
        )


def test_changed_config_is_a_note_unless_results_move():
    ref = _reference()
    cur = ref.copy()
    cur.loc[0, "method_params"] = '{"lr": 0.05, "new_option": 1}'
    assert quality.check(ref, cur).ok
    cur.loc[0, "final_train_loss"] = 3.0
    report = quality.check(ref, cur)
    assert not report.ok and "new_option" in report.failures[0]
