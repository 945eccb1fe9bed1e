"""Quality regression: the methods' smoke runs, whose final metrics must not move.

The sweep is every registered method's smoke runs (:attr:`Method.smoke
<ml2bench.methods.base.Method.smoke>`: problem, budget, hyper-parameters, seeds), each on its
problem's smoke size (:attr:`Problem.smoke_params <ml2bench.problems.base.Problem.smoke_params>`):
tiny, deterministic CPU runs (one intra-op thread, float64, fixed seeds). Their final metrics are
committed in ``ml2bench/sweep/quality_reference.csv`` (package data); ``tests/test_quality.py``
re-runs the sweep and fails when a (problem, method, seed) moved beyond the tolerance. A change of a
method's numerics that is *intended* is committed together with a regenerated reference:

    python -m ml2bench.sweep.quality --write     # regenerate the reference (every registered method)
    python -m ml2bench.sweep.quality             # re-run and compare (exit 1 on a regression)

Which methods are compared: those with rows in the reference. A method without any (just
registered, or a plugin) is run by the command and named in a note, not failed: the reference pins
numbers someone checked and committed, and a new method has none to regress from. Whether it
learns is checked anyway — by the floors below here and, in ``pytest``, by the contract tests on
the same smoke runs (``tests/contract/``) — and ``--write`` adds it once it does. So registering a
method never makes ``tests/test_quality.py`` fail; changing the numbers of a compared one does.

Why the tolerance is relative 1e-4 (``RTOL``, absolute floor ``ATOL`` = 1e-7): with one thread
and float64 the runs are bit-for-bit reproducible on one machine and torch build (verified by
running the sweep twice), so *any* deviation there is a code change. Across machines and torch
builds, the BLAS/oneDNN kernels may sum in another order; that moves float64 results at the
1e-13..1e-10 level, and the few steps of these sweeps (at most ~60) amplify it by far less than the
1e6 that would reach 1e-4. A genuine change of a method (a different step, line search or
default) moves the final loss by percent. Counters (``iterations``, ``grad_evals``,
``work_units``) and ``status`` are compared exactly (work units to 1e-9 relative: FLOP ratios).
Override with ``ML2BENCH_QUALITY_RTOL`` if a platform needs it.

Why the reference can be trusted: it is written by the code itself, so agreement with it alone
proves nothing. Every run of the sweep (and every row of the reference) must also clear a floor
that means "learned" and does not depend on the code: test accuracy ≥ ``LEARNED_ACCURACY`` = 0.5
on the 10 digit classes (chance 0.1), PINN relative L2 error ≤ ``LEARNED_REL_L2`` = 0.9 (the zero
predictor has exactly 1, tested in tests/test_pinn.py). The smoke runs' budgets and learning rates
are chosen so that every one clears its floor with a margin; no smoke run uses Klein–Gordon, which
no method learns at this size (Adam rel. L2 1.13 → 6.5, L-BFGS 6.2).

A reference row that the sweep no longer produces, and a sweep result of a compared method that has
no reference row, are failures (regenerate with --write and justify the moved numbers in the commit
message). Smoke runs on a problem that is not registered are skipped.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

REFERENCE = Path(__file__).resolve().parent / "quality_reference.csv"  # package data
RTOL = float(os.environ.get("ML2BENCH_QUALITY_RTOL", "1e-4"))
ATOL = 1e-7
KEY = ("problem", "method", "seed")
FLOAT_COLUMNS = ("final_train_loss", "final_val_metric", "final_test_loss", "final_test_metric")
EXACT_COLUMNS = ("status", "iterations")
COUNTER_COLUMNS = ("grad_evals", "work_units", "work_units_parallel")
CONFIG_COLUMNS = ("problem_params", "method_params", "budget", "batch_size")

# Floors that mean "learned" (independent of the code; see the module docstring).
LEARNED_ACCURACY = 0.5  # 10 classes: chance is 0.1
LEARNED_REL_L2 = 0.9  # the zero predictor has relative L2 error exactly 1


@dataclass(frozen=True)
class Entry:
    problem: str
    method: str
    problem_params: dict[str, Any]
    budget: dict[str, Any]
    method_params: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1)


def sweep(methods: Iterable[str] | None = None) -> list[Entry]:
    """The smoke runs of ``methods`` (default: every registered method) on their problems' smoke
    sizes, in registry order; runs on a problem that is not registered are left out."""
    from ml2bench.methods import METHODS
    from ml2bench.problems import PROBLEMS

    entries = []
    for method in METHODS.names() if methods is None else methods:
        for run in METHODS.get(method).smoke:
            if run.problem not in PROBLEMS:
                continue
            size = dict(PROBLEMS.get(run.problem).smoke_params or {})
            entries.append(Entry(run.problem, method, size, dict(run.budget), dict(run.params), tuple(run.seeds)))
    return entries


def compared_methods(reference: pd.DataFrame) -> list[str]:
    """The registered methods that have rows in ``reference`` (the ones :func:`check` compares)."""
    from ml2bench.methods import METHODS

    return [m for m in METHODS.names() if m in set(reference["method"])]


def floor_failures(table: pd.DataFrame) -> list[str]:
    """Runs (rows of a sweep result or of the reference) that did not learn: accuracy below
    ``LEARNED_ACCURACY``, relative L2 error above ``LEARNED_REL_L2``, an unknown metric, or a run
    that diverged or failed. A run that ``stopped`` (the method could not go on, runner contract)
    is judged by its metric like one that converged or used its budget."""
    failures = []
    for row in table.to_dict("records"):
        name = f"{row['problem']}/{row['method']}/seed{row['seed']}"
        metric = row.get("metric_name")
        value = float(row.get("final_test_metric", math.nan))
        if row.get("status") not in ("ok", "budget_exhausted", "stopped", "target_reached"):
            failures.append(f"{name}: status {row.get('status')} ({row.get('error')})")
        elif metric == "accuracy":
            if not value >= LEARNED_ACCURACY:
                failures.append(f"{name}: accuracy {value:.4g} < {LEARNED_ACCURACY} (chance 0.1): not learned")
        elif metric == "rel_l2":
            if not value <= LEARNED_REL_L2:
                failures.append(f"{name}: rel. L2 {value:.4g} > {LEARNED_REL_L2} (zero predictor: 1): not learned")
        else:
            failures.append(f"{name}: no floor for metric {metric!r}")
    return failures


def run_sweep(
    entries: Sequence[Entry] | None = None, seeds: Sequence[int] | None = None, verbose: bool = False
) -> pd.DataFrame:
    """Run the sweep (one thread, float64, CPU) and return one row per run."""
    from ml2bench.sweep.inprocess import run_many, stderr_if

    entries = sweep() if entries is None else entries
    configs = [
        {
            "problem": e.problem,
            "method": e.method,
            "seed": seed,
            "device": "cpu",
            "dtype": "float64",
            "threads": 1,
            "problem_params": e.problem_params,
            "method_params": e.method_params,
            "budget": e.budget,
        }
        for e in entries
        for seed in (e.seeds if seeds is None else seeds)
    ]
    rows = []
    for o in run_many(configs, threads=1, keep_going=True, log=stderr_if(verbose)):
        row = {"problem": o.raw["problem"], "method": o.raw["method"], "seed": o.raw["seed"]}
        if o.result is None:  # e.g. levels the problem lacks: recorded, not fatal
            rows.append({**row, "status": "config_error", "error": o.error})
            continue
        s = o.summary
        rows.append(
            {
                **row,
                "status": s["status"],
                "metric_name": s["metric_name"],
                **{c: float(s[c]) for c in FLOAT_COLUMNS + COUNTER_COLUMNS},
                "iterations": int(s["iterations"]),
                "batch_size": int(s["batch_size"]),
                "problem_params": s["problem_params"],
                "method_params": s["method_params"],
                "budget": s["budget"],
                "error": s["error"],
            }
        )
    out = pd.DataFrame(rows)
    out.insert(len(out.columns), "torch_version", torch.__version__)
    return out


def _close(ref: float, new: float, rtol: float, atol: float) -> bool:
    if math.isnan(ref) and math.isnan(new):
        return True
    return math.isclose(ref, new, rel_tol=rtol, abs_tol=atol)


@dataclass
class Report:
    failures: list[str]
    notes: list[str]

    @property
    def ok(self) -> bool:
        return not self.failures

    def text(self) -> str:
        lines = [f"FAIL {f}" for f in self.failures] + [f"note {n}" for n in self.notes]
        if self.ok:
            lines.append("quality: all runs match the reference")
        return "\n".join(lines)


def check(reference: pd.DataFrame, current: pd.DataFrame, rtol: float = RTOL, atol: float = ATOL) -> Report:
    """Compare ``current`` against ``reference`` by (problem, method, seed): the methods that have rows
    in the reference; the others get a note. Every row of ``current`` must clear the floors."""
    failures, notes = [], []
    ref = {tuple(r[k] for k in KEY): r for r in reference.to_dict("records")}
    compared = set(reference["method"]) if len(reference) else set()
    for method in sorted(set(current["method"]) - compared):  # see the module docstring
        notes.append(
            f"method {method}: no rows in the reference, not compared (its runs must still learn; add them with "
            f"'python -m ml2bench.sweep.quality --write')"
        )
    for row in current.to_dict("records"):
        key = tuple(row[k] for k in KEY)
        name = f"{row['problem']}/{row['method']}/seed{row['seed']}"
        if row["method"] not in compared:
            continue
        if key not in ref:
            failures.append(
                f"{name}: not in reference (new problem/method/entry?): status={row['status']} "
                f"train_loss={row.get('final_train_loss', math.nan):.6g}; regenerate with "
                f"'python -m ml2bench.sweep.quality --write'"
            )
            continue
        r = ref[key]
        changed_config = [c for c in CONFIG_COLUMNS if c in r and c in row and str(r[c]) != str(row[c])]
        config_note = ""
        if changed_config:  # e.g. a method gained a hyper-parameter: only a note if results agree
            config_note = (
                " [resolved config changed: " + "; ".join(f"{c}: {r[c]} -> {row[c]}" for c in changed_config) + "]"
            )
            notes.append(f"{name}: resolved config differs from the reference{config_note}")
        n_fail = len(failures)
        for c in EXACT_COLUMNS:
            if str(r.get(c)) != str(row.get(c)):
                failures.append(f"{name}: {c} {r.get(c)} -> {row.get(c)}")
        for c, tol in [(c, rtol) for c in FLOAT_COLUMNS] + [(c, 1e-9) for c in COUNTER_COLUMNS]:
            a, b = float(r.get(c, math.nan)), float(row.get(c, math.nan))
            if not _close(a, b, tol, atol):
                rel = (b - a) / abs(a) if a not in (0.0,) and math.isfinite(a) else math.nan
                failures.append(f"{name}: {c} {a:.10g} -> {b:.10g} (relative change {rel:+.3e}, tolerance {tol:g})")
        if changed_config and len(failures) > n_fail:
            failures[-1] += config_note
    current_keys = {tuple(x[k] for k in KEY) for x in current.to_dict("records")}
    for key in ref:
        if key not in current_keys:
            failures.append(
                f"{key[0]}/{key[1]}/seed{key[2]}: in reference but not run (problem/method not "
                f"registered or removed from the sweep; regenerate with --write if intended)"
            )
    failures += [f"floor: {f}" for f in floor_failures(current)]
    return Report(failures, notes)


def read_reference(path: Path = REFERENCE) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=True)


def write_reference(table: pd.DataFrame, path: Path = REFERENCE) -> None:
    from ml2bench.core.records import write_parquet_atomic

    # CSV with full float precision (repr round-trips)
    write_parquet_atomic(table, path)  # ``.csv`` suffix: written as CSV, atomically


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml2bench.sweep.quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"regenerate the reference ({REFERENCE})")
    parser.add_argument("--reference", type=Path, default=REFERENCE, help="reference CSV (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    table = run_sweep(verbose=not args.quiet)
    if args.write:
        bad = floor_failures(table)
        if bad:  # a reference that does not learn is no reference
            print("not written: runs below the 'learned' floors:\n" + "\n".join(bad), file=sys.stderr)
            return 1
        write_reference(table, args.reference)
        print(f"wrote {len(table)} runs to {args.reference} ({time.perf_counter() - t0:.1f}s)")
        return 0
    if not args.reference.is_file():
        print(f"error: no reference {args.reference}; create it with --write", file=sys.stderr)
        return 2
    report = check(read_reference(args.reference), table)
    print(report.text())
    print(f"({len(table)} runs, {time.perf_counter() - t0:.1f}s)")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
