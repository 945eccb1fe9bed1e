"""Why a run stopped: the closed set of stop reasons, each with the run status it implies.

A method names its reason in :class:`~ml2bench.methods.base.StepResult` (``stop_reason``), the
runner adds its own (divergence, a failure, a step that evaluated nothing, the first budget
reached), and every summary records one in its ``stop_reason`` column; records are checked
against this list before they are written (:func:`check_stop`). The members are ``str`` values,
so records hold the same plain strings as before (``"grad_tol"``, ``"budget:work_units"``) and a
comparison with a string works.

Why closed: a free string lets two methods say the same thing in two ways, and an analysis that
counts "converged" runs can then not know which strings mean convergence. Only ``grad_tol`` does:
a method reports convergence only when a stated criterion holds (the house rule); everything else
a method can say ends the run as ``stopped``, never ``ok``.

    python -m ml2bench.core.stop --markdown     # the table (docs/records.md: tools/records_doc.py)
"""

from __future__ import annotations

import argparse
import sys
from enum import Enum

#: run status (summary column ``status``) -> what it means; ``stop_reason`` says why in detail
STATUSES = {
    "ok": "the method met its stated convergence criterion",
    "stopped": "the method could not go on (no convergence claimed)",
    "budget_exhausted": "the first budget of the run was reached",
    "target_reached": "the run reached its target (run section target, sweep stop_at_target) and stopped there",
    "diverged": "the loss became non-finite or grew beyond 1e8 times its initial value",
    "failed": "an exception ended the run (summary column error)",
}


class StopReason(str, Enum):
    """Why a run (or one step of a method) stopped; ``status`` is the run status it implies."""

    status: str
    description: str

    def __new__(cls, value: str, status: str, description: str) -> StopReason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.status = status
        member.description = description
        return member

    __str__ = str.__str__  # the plain value, as written to the records (not "StopReason.GRAD_TOL")
    __format__ = str.__format__

    # the one convergence criterion (methods: ‖g‖ or max|g| below the method's tolerance)
    GRAD_TOL = "grad_tol", "ok", "the gradient norm fell to the method's tolerance (grad_tol, tolerance_grad)"
    # a method could not go on
    NONFINITE = "nonfinite", "stopped", "f or ∇f at the iterate is not finite: there is no model to build from it"
    ROUNDOFF = "roundoff", "stopped", "no trial point to evaluate: x + s == x in floating point, or no model decrease"
    NO_DECREASE = "no_decrease", "stopped", "the line search found no lower value along the steepest-descent direction"
    TOLERANCE_CHANGE = "tolerance_change", "stopped", "the change of f or x fell below tolerance_change (L-BFGS)"
    STALLED = "stalled", "stopped", "stall_cycles full-batch V-cycles in a row made no progress (RMTR, MG/OPT)"
    RADIUS_COLLAPSE = "radius_collapse", "stopped", "the APTS trust radius fell below radius_min (Schwarz)"
    ZERO_CORRECTION = "zero_correction", "stopped", "no correction from the local solvers (Schwarz, globalization none)"
    # the runner's reasons
    NO_EVALUATION = "no_evaluation", "stopped", "a step evaluated nothing, so it cannot have moved (runner)"
    DIVERGED = "diverged", "diverged", "the loss became non-finite or exceeded 1e8 times its initial value (runner)"
    FAILED = "failed", "failed", "the method or the problem raised an exception (runner; summary column error)"
    TARGET = "target", "target_reached", "an evaluation point reached the run's target (section target; runner)"
    # the first budget reached (ml2bench.core.config.BUDGET; tests/test_stop.py keeps the two lists equal)
    BUDGET_EPOCHS = "budget:epochs", "budget_exhausted", "the epochs budget was reached"
    BUDGET_GRAD_EVALS = "budget:grad_evals", "budget_exhausted", "the grad_evals budget was reached"
    BUDGET_WORK_UNITS = "budget:work_units", "budget_exhausted", "the work_units budget was reached"
    BUDGET_TIME_S = "budget:time_s", "budget_exhausted", "the time_s budget (training wall time) was reached"
    BUDGET_ITERATIONS = "budget:iterations", "budget_exhausted", "the iterations budget (method steps) was reached"

    @classmethod
    def budget(cls, key: str) -> StopReason:
        """The reason for reaching budget ``key`` (``"work_units"`` -> ``budget:work_units``)."""
        return cls.parse(f"budget:{key}")

    @classmethod
    def parse(cls, value: str | StopReason) -> StopReason:
        """``value`` as a member; a ValueError naming it and the allowed values otherwise."""
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(m.value for m in cls)
            raise ValueError(f"unknown stop reason {str(value)!r}; allowed: {allowed}") from None

    @property
    def converged(self) -> bool:
        """A stated convergence criterion (the run status ``ok``)."""
        return self.status == "ok"


def check_stop(status: str, stop_reason: str) -> None:
    """A summary's (status, stop_reason) pair: a known reason that implies that status."""
    reason = StopReason.parse(stop_reason)
    if status != reason.status:
        raise ValueError(f"stop reason {reason.value!r} implies status {reason.status!r}, not {status!r}")


def markdown() -> str:
    """The table of stop reasons (reason, run status, meaning) for the docs."""
    lines = ["| stop reason | status | meaning |", "|---|---|---|"]
    lines += [f"| `{m.value}` | `{m.status}` | {m.description} |" for m in StopReason]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml2bench.core.stop", description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the table of stop reasons as markdown")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown())
    else:
        for m in StopReason:
            print(f"{m.value:<20} {m.status:<17} {m.description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
