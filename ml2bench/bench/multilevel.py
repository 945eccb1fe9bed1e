"""Multilevel benchmark: RMTR, MG/OPT, TR, Adam and L-BFGS on the ``resnet`` problem (depth
hierarchy, 3 levels) to a target training loss.

Every run goes through :func:`ml2bench.core.runner.run` with a work-unit budget and evaluation every
``eval_interval`` work units; "to target" reads the first evaluation point whose full training
loss is ≤ ``target`` (so the resolution is ``eval_interval`` work units); runs that never reach
it report inf. The table gives medians over seeds.

``--variant LABEL=METHOD:JSON`` (repeatable) adds a row for METHOD with the default parameters of
that method updated by JSON, e.g. ``--variant 'rmtr-lbfgs=rmtr:{"model": "qn", "qn": "lbfgs"}'``.

``--grid`` measures level independence instead, on the classical grid problems of
:mod:`ml2bench.problems.grid.testproblems` (``--scherk-a`` sets the steepness of ``scherk``;
float64, all levels down to one node per dimension, u₀ ~ U[−1, 1] with seed 0 so that every
frequency is present; the minimal surfaces ``minsurf`` and ``scherk`` from the zero interior):
V-cycles and work units until ‖g‖ ≤ ``--rtol`` ‖g₀‖ (``grad_rtol``), for each method (defaults, or
``--variant``) on each problem and grid size ``--sizes`` (e.g. 31,63,127,255). A run that stops or
exceeds ``--max-cycles`` prints its stop reason instead of a count.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from ml2bench.sweep.grid_cycles import grid_cycles
from ml2bench.sweep.inprocess import run_many

PROBLEM = {"depth": 8, "width": 32, "arch": "dense", "interpolation": "constant"}
METHODS = {
    "rmtr": {"levels": 3},
    "mgopt": {"levels": 3},
    "tr": {},
    "adam": {},
    "lbfgs": {},
}


def _to_target(history, target: float) -> tuple[float, float]:
    hit = history[history["train_loss"] <= target]
    if not len(hit):
        return math.inf, math.inf
    row = hit.iloc[0]
    return float(row["work_units"]), float(row["train_time_s"])


GRID_PROBLEMS = ("poisson", "fas", "cubic", "varcoef", "minsurf", "scherk")


def start_seed(kind: str) -> int | None:
    """The grid benchmark's start: u₀ ~ U[−1, 1] with seed 0, the zero interior for the minimal
    surfaces (a random interior is not smooth)."""
    return None if kind in ("minsurf", "scherk") else 0


def grid_main(args, runs) -> int:
    import torch

    torch.set_num_threads(args.threads)  # the summation order moves the L-BFGS paths by ±2 cycles
    sizes = [int(v) for v in args.sizes.split(",")]
    problems = [(k, None) for k in args.problems.split(",") if k != "scherk"]
    if "scherk" in args.problems.split(","):
        problems += [("scherk", float(a)) for a in args.scherk_a.split(",")]
    print(
        f"V-cycles (work units) to ‖g‖ <= {args.rtol:g} ‖g0‖, u0 ~ U[-1,1] seed 0 (minimal surfaces: the "
        f"zero interior), all levels, {args.threads} thread(s)"
    )
    print()
    print("| method | problem | " + " | ".join(f"{n}²" for n in sizes) + " |")
    print("|---|---|" + "---|" * len(sizes))
    for label, method, params in runs:
        for kind, a in problems:
            cells = []
            for n in sizes:
                out = grid_cycles(
                    method,
                    kind,
                    n,
                    params,
                    rtol=args.rtol,
                    max_cycles=args.max_cycles,
                    seed=start_seed(kind),
                    scherk_a=a,
                )
                if out.cycles is None:
                    cells.append(f"{out.stop_reason} ({out.rel_grad:.1e})")
                else:
                    cells.append(f"{out.cycles} ({out.work_units:.0f})")
            name = kind if a is None else f"{kind} a={a:g}"
            print(f"| {label} | {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


def _check_args(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """One clear message naming the bad value and what is allowed (argparse exits with 2)."""
    from ml2bench.multilevel.grid import max_grid_levels

    unknown = [m for m in args.methods.split(",") if m and m not in METHODS]
    if unknown:
        ap.error(f"--methods: unknown {', '.join(map(repr, unknown))}; allowed: {', '.join(METHODS)}")
    if not args.grid:
        return
    bad = [p for p in args.problems.split(",") if p not in GRID_PROBLEMS]
    if bad:
        ap.error(f"--problems: unknown {', '.join(map(repr, bad))}; allowed: {', '.join(GRID_PROBLEMS)}")
    try:
        sizes = [int(v) for v in args.sizes.split(",")]
        scherk_a = [float(v) for v in args.scherk_a.split(",")]
    except ValueError as exc:
        ap.error(f"--sizes/--scherk-a: {exc}")
    for n in sizes:  # a size that cannot be coarsened would run a single level, not a V-cycle
        if n < 3 or max_grid_levels(n) < 2 or (n + 1) & n:
            ap.error(f"--sizes: {n} is not a grid of 2^k - 1 nodes (k >= 2) per dimension, e.g. 31, 63, 127")
    for a in scherk_a:
        if not 0.0 < a < math.pi:
            ap.error(f"--scherk-a: {a:g} is outside (0, π) (boundary slopes tan(a/2))")
    if args.rtol <= 0 or args.max_cycles < 1:
        ap.error("--rtol must be > 0 and --max-cycles >= 1")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml2bench.bench multilevel")
    ap.add_argument("--grid", action="store_true", help="level independence on the classical grid problems")
    ap.add_argument("--sizes", default="31,63,127", help="--grid: grid sizes n (n² unknowns)")
    ap.add_argument("--problems", default=",".join(GRID_PROBLEMS), help="--grid: problems")
    ap.add_argument(
        "--scherk-a",
        default="2.8",
        help="--grid: Scherk's a for the scherk problem, comma "
        "separated (boundary slopes up to tan(a/2): 1.0 → 0.55, 2.0 → 1.56, 2.8 → 5.8)",
    )
    ap.add_argument("--rtol", type=float, default=1e-8, help="--grid: relative gradient tolerance")
    ap.add_argument("--max-cycles", type=int, default=60, help="--grid: most V-cycles per run")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one seed, a quarter of the budget")
    ap.add_argument("--target", type=float, default=0.01, help="target full training loss")
    ap.add_argument("--budget", type=float, default=200.0, help="work units per run")
    ap.add_argument("--eval-interval", type=float, default=2.0)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=METHOD:JSON",
        help="extra row: METHOD with its default parameters updated by JSON",
    )
    args = ap.parse_args(argv)
    _check_args(ap, args)
    runs = [(m, m, METHODS[m]) for m in args.methods.split(",") if m]
    for spec_ in args.variant:
        label, _, rest = spec_.partition("=")
        method, _, params = rest.partition(":")
        if not label or method not in METHODS:
            ap.error(f"--variant {spec_!r}: expected LABEL=METHOD:JSON with METHOD in {', '.join(METHODS)}")
        runs.append((label, method, {**METHODS[method], **json.loads(params or "{}")}))
    if args.grid:
        runs = [(m, m, {}) for m in args.methods.split(",") if m in ("rmtr", "mgopt")] + [
            (label, method, {k: v for k, v in params.items() if k != "levels"})
            for label, method, params in runs
            if label != method
        ]
        return grid_main(args, runs)
    seeds = 1 if args.quick else args.seeds
    budget = args.budget / 4 if args.quick else args.budget
    rows = []
    t0 = time.time()
    for label, method, method_params in runs:
        per_seed = []
        configs = [
            {
                "problem": "resnet",
                "method": method,
                "seed": seed,
                "problem_params": PROBLEM,
                "method_params": method_params,
                "budget": {"work_units": budget},
                "eval_interval": args.eval_interval,
                "threads": args.threads,
            }
            for seed in range(seeds)
        ]
        for seed, outcome in enumerate(run_many(configs)):
            s = outcome.summary
            wu, wt = _to_target(outcome.result.history, args.target)
            per_seed.append((wu, wt, float(s["final_train_loss"]), float(s["final_test_metric"]), s["status"]))
            print(
                f"  {label} seed {seed}: status={s['status']} to-target wu={wu:.1f} time={wt:.1f}s "
                f"final loss={s['final_train_loss']:.4g} acc={s['final_test_metric']:.4f} {s['error']}",
                flush=True,
            )
        arr = np.array([p[:4] for p in per_seed], dtype=float)
        rows.append((label, *np.median(arr, axis=0), sum(math.isfinite(p[0]) for p in per_seed)))
    print()
    print(
        f"resnet {PROBLEM}, target train loss {args.target}, budget {budget} work units, "
        f"{seeds} seed(s), medians; total {time.time() - t0:.0f}s"
    )
    print()
    print(
        "| method | work units to target | wall time to target (s) | final train loss | final test accuracy | reached |"
    )
    print("|---|---|---|---|---|---|")
    for method, wu, wt, loss, acc, reached in rows:
        print(f"| {method} | {wu:.1f} | {wt:.2f} | {loss:.4g} | {acc:.4f} | {reached}/{seeds} |")
    return 0
