"""Multilevel benchmark: RMTR, MG/OPT, TR, Adam and L-BFGS on the ``resnet`` problem (depth
hierarchy, 3 levels) to a target training loss.

Every run goes through :func:`ml2bench.runner.run` with a work-unit budget and evaluation every
``eval_interval`` work units; "to target" reads the first evaluation point whose full training
loss is ≤ ``target`` (so the resolution is ``eval_interval`` work units); runs that never reach
it report inf. The table gives medians over seeds.

``--variant LABEL=METHOD:JSON`` (repeatable) adds a row for METHOD with the default parameters of
that method updated by JSON, e.g. ``--variant 'rmtr-hessian=rmtr:{"model": "hessian", "cg_max_iter": 3}'``.
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from ..config import RunConfig
from ..runner import run

PROBLEM = {"depth": 8, "width": 32, "arch": "dense", "interpolation": "constant"}
METHODS = {
    "rmtr": {"levels": 3},
    "mgopt": {"levels": 3, "smoother": "lbfgs"},
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml2bench.bench multilevel")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one seed, a quarter of the budget")
    ap.add_argument("--target", type=float, default=0.01, help="target full training loss")
    ap.add_argument("--budget", type=float, default=200.0, help="work units per run")
    ap.add_argument("--eval-interval", type=float, default=2.0)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variant", action="append", default=[], metavar="LABEL=METHOD:JSON",
                    help="extra row: METHOD with its default parameters updated by JSON")
    args = ap.parse_args(argv)
    runs = [(m, m, METHODS[m]) for m in args.methods.split(",") if m]
    for spec_ in args.variant:
        label, _, rest = spec_.partition("=")
        method, _, params = rest.partition(":")
        if not label or method not in METHODS:
            ap.error(f"--variant {spec_!r}: expected LABEL=METHOD:JSON with METHOD in {', '.join(METHODS)}")
        runs.append((label, method, {**METHODS[method], **json.loads(params or "{}")}))
    seeds = 1 if args.quick else args.seeds
    budget = args.budget / 4 if args.quick else args.budget
    rows = []
    t0 = time.time()
    for label, method, method_params in runs:
        per_seed = []
        for seed in range(seeds):
            cfg = RunConfig.from_dict({
                "problem": "resnet", "method": method, "seed": seed, "problem_params": PROBLEM,
                "method_params": method_params, "budget": {"work_units": budget},
                "eval_interval": args.eval_interval, "threads": args.threads,
            })
            res = run(cfg)
            s = res.summary.iloc[0]
            wu, wt = _to_target(res.history, args.target)
            per_seed.append((wu, wt, float(s["final_train_loss"]), float(s["final_test_metric"]), s["status"]))
            print(f"  {label} seed {seed}: status={s['status']} to-target wu={wu:.1f} time={wt:.1f}s "
                  f"final loss={s['final_train_loss']:.4g} acc={s['final_test_metric']:.4f} {s['error']}",
                  flush=True)
        arr = np.array([p[:4] for p in per_seed], dtype=float)
        rows.append((label, *np.median(arr, axis=0), sum(math.isfinite(p[0]) for p in per_seed)))
    print()
    print(f"resnet {PROBLEM}, target train loss {args.target}, budget {budget} work units, "
          f"{seeds} seed(s), medians; total {time.time() - t0:.0f}s")
    print()
    print("| method | work units to target | wall time to target (s) | final train loss | final test accuracy | reached |")
    print("|---|---|---|---|---|---|")
    for method, wu, wt, loss, acc, reached in rows:
        print(f"| {method} | {wu:.1f} | {wt:.2f} | {loss:.4g} | {acc:.4f} | {reached}/{seeds} |")
    return 0
