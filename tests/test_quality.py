"""Quality regression: the fixed sweep of :mod:`ml2bench.quality` must reproduce the committed
reference ``tests/reference/quality.csv`` (regenerate with ``python -m ml2bench.quality --write``
when a change of a method's numerics is intended; see the module docstring for the tolerance)."""
from __future__ import annotations

import pandas as pd
import pytest

from ml2bench import quality


@pytest.fixture(scope="module")
def current() -> pd.DataFrame:
    return quality.run_sweep()


def test_sweep_matches_reference(current):
    assert quality.REFERENCE.is_file(), "no reference: run 'python -m ml2bench.quality --write'"
    report = quality.check(quality.read_reference(), current)
    if report.notes:
        print(report.text())  # shown with -rP / on failure: runs not in the reference are reported only
    assert report.ok, "quality regression (tolerance: relative %g):\n%s" % (quality.RTOL, report.text())


def test_no_run_fails(current):
    bad = current[~current["status"].isin(["ok", "budget_exhausted"])]
    assert bad.empty, bad[["problem", "method", "seed", "status", "error"]].to_string()


def _reference() -> pd.DataFrame:
    return pd.DataFrame([
        {"problem": "mlp", "method": "sgd", "seed": 0, "status": "budget_exhausted", "iterations": 12,
         "final_train_loss": 2.0, "final_test_loss": 2.1, "final_test_metric": 0.5, "grad_evals": 3.0,
         "work_units": 3.0, "method_params": '{"lr": 0.05}'},
        {"problem": "resnet", "method": "tr", "seed": 1, "status": "budget_exhausted", "iterations": 8,
         "final_train_loss": 1.0, "final_test_loss": 1.1, "final_test_metric": 0.6, "grad_evals": 9.0,
         "work_units": 7.5, "method_params": "{}"},
    ])


def test_check_names_what_moved_and_by_how_much():
    ref = _reference()
    cur = ref.copy()
    cur.loc[1, "final_train_loss"] = 1.001          # +1e-3 relative: beyond 1e-4
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


def test_unknown_runs_are_reported_not_failed():
    ref = _reference()
    extra = ref.iloc[[0]].assign(problem="pinn_burgers", method="rmtr")
    cur = pd.concat([ref.iloc[[0]], extra], ignore_index=True)
    report = quality.check(ref, cur)
    assert report.ok
    assert any("pinn_burgers/rmtr/seed0: not in reference" in n for n in report.notes)
    assert any("resnet/tr/seed1: in reference but not run" in n for n in report.notes)


def test_changed_config_is_a_note_unless_results_move():
    ref = _reference()
    cur = ref.copy()
    cur.loc[0, "method_params"] = '{"lr": 0.05, "new_option": 1}'
    assert quality.check(ref, cur).ok
    cur.loc[0, "final_train_loss"] = 3.0
    report = quality.check(ref, cur)
    assert not report.ok and "new_option" in report.failures[0]
