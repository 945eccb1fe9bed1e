"""Benchmark (not a test): Schwarz-preconditioned training versus L-BFGS and Adam on PINNs.

    python -m ml2bench.bench.schwarz [--seeds 3] [--problems pinn_poisson,pinn_burgers]
                                     [--work 60] [--width 16] [--depth 4] [--points 200]

Every method gets the same budget in work units (fine-level full-batch gradient evaluations,
charged by the objectives, local Schwarz evaluations included) and the same problem instance per
seed. Prints one markdown table: median over seeds of the final relative L2 error, work units and
training time, per problem and method; then the parallel speedup of additive Schwarz (SPQN) with 2
gloo processes over 1 process (same iterations, 1 torch thread per process in both, so the ratio
measures the decomposition's parallelism and not intra-op threading). Falls back to ``mlp`` (test
metric: accuracy) when the PINN problems are not registered.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from ml2bench.problems import PROBLEMS
from ml2bench.sweep.inprocess import run_many

METHODS = {
    "ASPQN (additive, L-BFGS)": ("schwarz", {"variant": "additive", "globalization": "lbfgs"}),
    "MSPQN (multiplicative, L-BFGS)": ("schwarz", {"variant": "multiplicative", "globalization": "lbfgs"}),
    "APTS (additive, TR)": ("schwarz", {"variant": "additive", "globalization": "tr", "radius": 0.5}),
    "MPTS (multiplicative, TR)": ("schwarz", {"variant": "multiplicative", "globalization": "tr", "radius": 0.5}),
    "L-BFGS": ("lbfgs", {}),
    "Adam (lr 1e-3, full batch)": ("adam", {"lr": 1e-3}),
}


def problem_params(problem: str, args) -> dict:
    if problem.startswith("pinn_"):
        hp = {"width": args.width, "depth": args.depth, "n_interior": args.points}
        names = {p.name for p in PROBLEMS.get(problem).params}
        for key, value in (("n_boundary", args.points // 5), ("n_initial", args.points // 5)):
            if key in names:
                hp[key] = value
        return hp
    return {"n_train": 300, "n_test": 200, "width": 16}


def schwarz_defaults(args) -> dict:
    return {"subdomains": args.subdomains, "local_steps": args.local_steps, "decomposition": "layers"}


def one(problem, method, hp, seed, args, budget, threads=None, batch_size=None):
    config = {
        "problem": problem,
        "method": method,
        "seed": seed,
        "problem_params": problem_params(problem, args),
        "method_params": hp,
        "budget": budget,
        "eval_interval": float(args.work) / 4,
        "threads": threads,
        "batch_size": batch_size,
    }
    return next(run_many([config])).summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml2bench.bench.schwarz", description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument(
        "--problems",
        default="pinn_poisson,pinn_burgers,pinn_allen_cahn,pinn_klein_gordon",
        help="comma-separated problem names",
    )
    ap.add_argument("--work", type=float, default=60.0, help="budget in work units per run")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--points", type=int, default=200, help="interior collocation points")
    ap.add_argument("--subdomains", type=int, default=2)
    ap.add_argument("--local-steps", type=int, default=5)
    ap.add_argument("--speedup-iterations", type=int, default=3)
    ap.add_argument("--speedup-only", action="store_true", help="skip the comparison table")
    args = ap.parse_args(argv)
    problems = [p for p in args.problems.split(",") if p]
    missing = [p for p in problems if p not in PROBLEMS.names()]
    if missing:
        print(
            f"error: unknown problem(s) {', '.join(missing)}; allowed: {', '.join(PROBLEMS.names())}", file=sys.stderr
        )
        return 2

    print(
        f"Budget {args.work:g} work units per run, median over {args.seeds} seeds; Schwarz: "
        f"{args.subdomains} layer subdomains, {args.local_steps} local L-BFGS steps, 1 global step.\n"
    )
    print("| problem | method | metric (median final) | work units | train time s | status |")
    print("|---|---|---|---|---|---|")
    for problem in problems if not args.speedup_only else []:
        metric_name = PROBLEMS.get(problem).metric_name
        for label, (method, extra) in METHODS.items():
            hp = dict(schwarz_defaults(args), **extra) if method == "schwarz" else dict(extra)
            rows = [one(problem, method, hp, seed, args, {"work_units": args.work}) for seed in range(args.seeds)]
            med = lambda key, rows=rows: statistics.median(float(r[key]) for r in rows)  # noqa: E731
            statuses = ",".join(sorted({str(r["status"]) for r in rows}))
            print(
                f"| {problem} | {label} | {metric_name} {med('final_test_metric'):.3g} | "
                f"{med('work_units'):.1f} | {med('train_time_s'):.2f} | {statuses} |",
                flush=True,
            )
            for r in rows:
                if r["status"] == "failed":
                    print(f"<!-- {label} seed {r['seed']} failed: {r['error']} -->")

    problem = problems[0]
    hp = dict(schwarz_defaults(args), variant="additive", globalization="lbfgs")
    budget = {"iterations": args.speedup_iterations}
    seq = one(problem, "schwarz", hp, 0, args, budget, threads=1)
    t0 = time.perf_counter()
    par = one(
        problem, "schwarz", dict(hp, parallel=True, processes=2, threads_per_process=1), 0, args, budget, threads=1
    )
    wall_par = time.perf_counter() - t0
    print(
        f"\nParallel speedup, additive SPQN on {problem}, {args.speedup_iterations} iterations, "
        f"{args.subdomains} subdomains, 1 thread per process:\n"
    )
    print("| processes | train time s | wall time s (incl. start-up) | work units | final train loss | status |")
    print("|---|---|---|---|---|---|")
    print(
        f"| 1 | {seq['train_time_s']:.2f} | {seq['wall_time_s']:.2f} | {seq['work_units']:.1f} | "
        f"{seq['final_train_loss']:.6g} | {seq['status']} |"
    )
    print(
        f"| 2 (gloo, 127.0.0.1) | {par['train_time_s']:.2f} | {wall_par:.2f} | {par['work_units']:.1f} | "
        f"{par['final_train_loss']:.6g} | {par['status']} |"
    )
    if par["status"] != "failed" and par["train_time_s"] > 0:
        print(f"\nspeedup (train time) = {seq['train_time_s'] / par['train_time_s']:.2f}x")
    else:
        print(f"\nparallel run failed: {par['error']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
