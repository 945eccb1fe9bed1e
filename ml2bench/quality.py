"""Quality regression: a small fixed sweep whose final metrics must not move.

A handful of tiny, deterministic CPU runs (one intra-op thread, float64, fixed seeds) covering
each registered method on the problems it can run cheaply. Their final metrics are committed in
``tests/reference/quality.csv``; ``tests/test_quality.py`` re-runs the sweep and fails when a
(problem, method, seed) moved beyond the tolerance. A change of a method's numerics that is
*intended* is committed together with a regenerated reference:

    python -m ml2bench.quality --write     # regenerate tests/reference/quality.csv
    python -m ml2bench.quality             # re-run and compare (exit 1 on a regression)

Why the tolerance is relative 1e-4 (``RTOL``, absolute floor ``ATOL`` = 1e-7): with one thread
and float64 the runs are bit-for-bit reproducible on one machine and torch build (verified by
running the sweep twice), so *any* deviation there is a code change. Across machines and torch
builds, the BLAS/oneDNN kernels may sum in another order; that moves float64 results at the
1e-13..1e-10 level, and the few steps of these sweeps (at most ~30) amplify it by far less than the
1e6 that would reach 1e-4. A genuine change of a method (a different step, line search or
default) moves the final loss by percent. Counters (``iterations``, ``grad_evals``,
``work_units``) and ``status`` are compared exactly (work units to 1e-9 relative: FLOP ratios).
Override with ``ML2BENCH_QUALITY_RTOL`` if a platform needs it.

Entries whose problem or method is not registered are skipped; sweep results whose (problem,
method, seed) is not in the reference are reported ("not in reference: regenerate with
--write"), not failed.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch

REFERENCE = Path(__file__).resolve().parent.parent / "tests" / "reference" / "quality.csv"
RTOL = float(os.environ.get("ML2BENCH_QUALITY_RTOL", "1e-4"))
ATOL = 1e-7
SEEDS = (0, 1)
KEY = ("problem", "method", "seed")
FLOAT_COLUMNS = ("final_train_loss", "final_test_loss", "final_test_metric")
EXACT_COLUMNS = ("status", "iterations")
COUNTER_COLUMNS = ("grad_evals", "work_units")
CONFIG_COLUMNS = ("problem_params", "method_params", "budget", "batch_size")

# Tiny problem sizes (a run takes well under a second).
MLP = {"n_train": 256, "n_test": 128, "width": 16}
RESNET = {"n_train": 256, "n_test": 128, "width": 8, "depth": 4}
PINN = {"n_interior": 128, "n_boundary": 32, "n_initial": 32, "n_test": 21, "n_test_x": 32, "n_test_t": 11,
        "width": 8, "depth": 4}  # filtered by each PINN problem's parameter names
MINIBATCH = {"epochs": 3}
FULLBATCH = {"iterations": 8}


@dataclass(frozen=True)
class Entry:
    problem: str
    method: str
    problem_params: dict[str, Any]
    budget: dict[str, Any]
    method_params: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = SEEDS


def sweep() -> list[Entry]:
    """The fixed sweep: every single-level baseline on mlp and resnet, and every other registered
    method with its defaults on the problems that have levels (resnet, pinn_poisson).

    Adding entries is fine (they show up as "not in reference" until ``--write``); changing an
    existing entry changes its reference and needs ``--write``.
    """
    from .methods import METHODS
    from .problems import PROBLEMS

    entries: list[Entry] = []
    baselines = ("sgd", "adam", "lbfgs")
    for method in baselines:
        budget = FULLBATCH if method == "lbfgs" else MINIBATCH
        entries.append(Entry("mlp", method, MLP, budget))
        entries.append(Entry("resnet", method, RESNET, budget))
    if "pinn_poisson" in PROBLEMS:
        entries.append(Entry("pinn_poisson", "adam", PINN, {"iterations": 20}))
        entries.append(Entry("pinn_poisson", "lbfgs", PINN, FULLBATCH))
    for problem in ("pinn_burgers", "pinn_allen_cahn", "pinn_klein_gordon"):
        entries.append(Entry(problem, "adam", PINN, {"iterations": 5}, seeds=(0,)))
    for method in METHODS.names():  # multilevel / DD methods, as they get registered
        if method in baselines:
            continue
        full = METHODS.get(method).full_batch
        entries.append(Entry("resnet", method, RESNET, FULLBATCH if full else MINIBATCH))
        # PINN runs of multilevel methods cost ~0.3 s per iteration here: one seed, few iterations
        entries.append(Entry("pinn_poisson", method, PINN, {"iterations": 3} if full else MINIBATCH,
                             seeds=(0,)))
    return [e for e in entries if e.problem in PROBLEMS and e.method in METHODS]


def _filter_params(problem: str, params: dict[str, Any]) -> dict[str, Any]:
    from .problems import PROBLEMS

    names = set(PROBLEMS.get(problem).params.names())
    return {k: v for k, v in params.items() if k in names}


def run_sweep(entries: Sequence[Entry] | None = None, seeds: Sequence[int] | None = None,
              verbose: bool = False) -> pd.DataFrame:
    """Run the sweep (one thread, float64, CPU) and return one row per run."""
    from .config import RunConfig
    from .runner import run

    entries = sweep() if entries is None else entries
    seeds = tuple(seeds) if seeds is not None else None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        for e in entries:
            for seed in (e.seeds if seeds is None else seeds):
                t0 = time.perf_counter()
                try:
                    config = RunConfig.from_dict({
                        "problem": e.problem, "method": e.method, "seed": seed, "device": "cpu",
                        "dtype": "float64", "threads": 1, "problem_params": _filter_params(e.problem, e.problem_params),
                        "method_params": e.method_params, "budget": e.budget,
                    })
                    s = run(config).summary.iloc[0]
                except Exception as err:  # e.g. levels the problem lacks: recorded, not fatal
                    rows.append({"problem": e.problem, "method": e.method, "seed": seed, "status": "config_error",
                                 "error": str(err).splitlines()[0]})
                    if verbose:
                        print(f"  {e.problem:>14} {e.method:>8} seed {seed}: config_error {rows[-1]['error']}",
                              file=sys.stderr)
                    continue
                rows.append({
                    "problem": e.problem, "method": e.method, "seed": seed, "status": s["status"],
                    "metric_name": s["metric_name"],
                    **{c: float(s[c]) for c in FLOAT_COLUMNS + COUNTER_COLUMNS},
                    "iterations": int(s["iterations"]), "batch_size": int(s["batch_size"]),
                    "problem_params": s["problem_params"], "method_params": s["method_params"],
                    "budget": s["budget"], "error": s["error"],
                })
                if verbose:
                    r = rows[-1]
                    print(f"  {e.problem:>14} {e.method:>8} seed {seed}: {r['status']:<16} "
                          f"loss={r['final_train_loss']:.6g} metric={r['final_test_metric']:.4g} "
                          f"({time.perf_counter() - t0:.2f}s)", file=sys.stderr)
    finally:
        torch.set_num_threads(threads)
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
        return "\n".join(lines) if lines else "quality: all runs match the reference"


def check(reference: pd.DataFrame, current: pd.DataFrame, rtol: float = RTOL, atol: float = ATOL) -> Report:
    """Compare ``current`` against ``reference`` by (problem, method, seed)."""
    failures, notes = [], []
    ref = {tuple(r[k] for k in KEY): r for r in reference.to_dict("records")}
    for row in current.to_dict("records"):
        key = tuple(row[k] for k in KEY)
        name = f"{row['problem']}/{row['method']}/seed{row['seed']}"
        if key not in ref:
            notes.append(f"{name}: not in reference (new problem/method?): status={row['status']} "
                         f"train_loss={row.get('final_train_loss', math.nan):.6g}; regenerate with "
                         f"'python -m ml2bench.quality --write'")
            continue
        r = ref[key]
        changed_config = [c for c in CONFIG_COLUMNS if c in r and c in row and str(r[c]) != str(row[c])]
        config_note = ""
        if changed_config:  # e.g. a method gained a hyper-parameter: only a note if results agree
            config_note = (" [resolved config changed: " + "; ".join(f"{c}: {r[c]} -> {row[c]}" for c in changed_config)
                           + "]")
            notes.append(f"{name}: resolved config differs from the reference{config_note}")
        n_fail = len(failures)
        for c in EXACT_COLUMNS:
            if str(r.get(c)) != str(row.get(c)):
                failures.append(f"{name}: {c} {r.get(c)} -> {row.get(c)}")
        for c, tol in [(c, rtol) for c in FLOAT_COLUMNS] + [(c, 1e-9) for c in COUNTER_COLUMNS]:
            a, b = float(r.get(c, math.nan)), float(row.get(c, math.nan))
            if not _close(a, b, tol, atol):
                rel = (b - a) / abs(a) if a not in (0.0,) and math.isfinite(a) else math.nan
                failures.append(f"{name}: {c} {a:.10g} -> {b:.10g} (relative change {rel:+.3e}, "
                                f"tolerance {tol:g})")
        if changed_config and len(failures) > n_fail:
            failures[-1] += config_note
    current_keys = {tuple(x[k] for k in KEY) for x in current.to_dict("records")}
    for key in ref:
        if key not in current_keys:
            notes.append(f"{key[0]}/{key[1]}/seed{key[2]}: in reference but not run (problem/method not "
                         f"registered or removed from the sweep)")
    return Report(failures, notes)


def read_reference(path: Path = REFERENCE) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=True)


def write_reference(table: pd.DataFrame, path: Path = REFERENCE) -> None:
    from .records import write_parquet_atomic

    # CSV with full float precision (repr round-trips)
    write_parquet_atomic(table, path)  # ``.csv`` suffix: written as CSV, atomically


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml2bench.quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"regenerate the reference ({REFERENCE})")
    parser.add_argument("--reference", type=Path, default=REFERENCE, help="reference CSV (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    table = run_sweep(verbose=not args.quiet)
    if args.write:
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
