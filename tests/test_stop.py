"""Stop reasons are a closed enumeration: methods, the runner and the records use only its members,
each member implies one run status, and the documentation table is generated from it."""

from __future__ import annotations

import pytest

from ml2bench.core.config import BUDGET, RunConfig
from ml2bench.core.runner import run
from ml2bench.core.stop import STATUSES, StopReason, check_stop, markdown
from ml2bench.methods import METHODS
from ml2bench.methods.base import StepResult


def test_budget_reasons_are_the_budget_keys():
    budget = {m.value.split(":", 1)[1] for m in StopReason if m.value.startswith("budget:")}
    assert budget == set(BUDGET.names())
    assert all(StopReason.budget(k).status == "budget_exhausted" for k in BUDGET.names())


def test_every_reason_implies_a_known_status_and_only_grad_tol_is_convergence():
    assert {m.status for m in StopReason} == set(STATUSES)
    assert [m.value for m in StopReason if m.converged] == ["grad_tol"]
    assert str(StopReason.GRAD_TOL) == f"{StopReason.GRAD_TOL}" == "grad_tol" == StopReason.GRAD_TOL


def test_step_result_checks_its_reason():
    assert StepResult(1.0, stop_reason="stalled").stop_reason is StopReason.STALLED
    assert StepResult(1.0).stop_reason == "" and not StepResult(1.0).stops
    with pytest.raises(ValueError, match="unknown stop reason 'stuck'; allowed: grad_tol"):
        StepResult(1.0, stop_reason="stuck")
    with pytest.raises(ValueError, match="converged=True with stop_reason ''"):
        StepResult(1.0, converged=True)
    with pytest.raises(ValueError, match="converged=False with stop_reason 'grad_tol'"):
        StepResult(1.0, stop_reason="grad_tol")


def test_check_stop():
    check_stop("budget_exhausted", "budget:work_units")
    with pytest.raises(ValueError, match="implies status 'stopped', not 'ok'"):
        check_stop("ok", "stalled")


def test_markdown_table_has_one_row_per_reason():
    rows = markdown().splitlines()[2:]
    assert [r.split("`")[1] for r in rows] == [m.value for m in StopReason]


def test_runner_records_the_methods_reason_and_its_status(small_mlp, monkeypatch):
    """A method's reason ends the run with the status the reason implies; an unknown one fails
    the run with a message naming it (never a record with a free string)."""
    cls = METHODS.get("adam")
    monkeypatch.setattr(cls, "step", lambda self, batch: StepResult(1.0, stop_reason="roundoff"))
    s = run(RunConfig.from_dict(small_mlp)).summary.iloc[0]
    assert (s["status"], s["stop_reason"]) == ("stopped", "roundoff") and type(s["stop_reason"]) is str
    monkeypatch.setattr(cls, "step", lambda self, batch: StepResult(1.0, stop_reason="gave_up"))
    s = run(RunConfig.from_dict(small_mlp)).summary.iloc[0]
    assert (s["status"], s["stop_reason"]) == ("failed", "failed") and "unknown stop reason 'gave_up'" in s["error"]
