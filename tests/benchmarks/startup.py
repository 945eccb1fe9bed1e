"""Per-run fixed cost and evaluation share (issue 14, deliverable 1); a script, not a timed test.

    python tests/benchmarks/startup.py                 # both parts, median of 5
    python tests/benchmarks/startup.py --part fixed    # only the process start-up part
    python tests/benchmarks/startup.py --part eval --config workflow/config/default.yaml

*fixed*: wall time of ``ml2bench run --set budget.iterations=1`` (``--method``, default adam) (one
step, two evaluation points, writing both tables) minus that of ``python -c "import torch"``, both as fresh processes,
interleaved, median of ``--repeats``; one row per problem at the default sweep's size. The PDE
reference cache (``$ML2BENCH_CACHE``) is warmed first, as it is after a sweep's first run.

*eval*: every (sweep entry, method) of ``--config`` (seed 0) run in this process; the time of the
evaluation points (``Problem.evaluate`` + the full training loss) against the run's training time
(``train_time_s``). The goal of issue 14 is eval ≤ 25 % of training at the default interval.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _jobs(config_path: Path):
    from ml2bench.sweep import jobs as sweep

    config = yaml.safe_load(config_path.read_text())
    return sweep.expand(config)


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def fixed_cost(config_path: Path, repeats: int, only: list[str] | None = None, method: str = "adam") -> None:
    jobs = {}
    for job in _jobs(config_path):
        if job.method == method and (not only or job.problem_id in only):
            jobs.setdefault(job.problem_id, job)
    env = dict(os.environ)
    env.setdefault("ML2BENCH_CACHE", tempfile.mkdtemp(prefix="ml2bench-cache-"))
    print(f"fixed cost per run (median of {repeats}; ML2BENCH_CACHE={env['ML2BENCH_CACHE']})")
    print("| problem | import torch (s) | ml2bench run, 1 step (s) | fixed cost beyond torch (s) |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for pid, job in jobs.items():
            run = [
                sys.executable,
                "-m",
                "ml2bench",
                "run",
                *job.cli_args().split(),
                "--set",
                "budget.iterations=1",
                "--out",
                f"{tmp}/{pid}",
                "--quiet",
            ]
            run = [a.strip("'") for a in run]
            subprocess.run(run, check=True, env=env, stdout=subprocess.DEVNULL)  # warm caches
            base, full = [], []
            for _ in range(repeats):
                base.append(_timed([sys.executable, "-c", "import torch"], env))
                full.append(_timed(run, env))
            b, f = statistics.median(base), statistics.median(full)
            diff = statistics.median(x - y for x, y in zip(full, base))
            print(f"| {pid} | {b:.2f} | {f:.2f} | {diff:.2f} |", flush=True)


def _stopwatch(fn, spent: dict[str, float]):
    """``fn`` that adds its wall time to ``spent["eval"]`` (full-loss and test evaluations)."""

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent["eval"] += time.perf_counter() - t0

    return timed


def eval_share(config_path: Path) -> None:
    import torch

    from ml2bench.core import runner
    from ml2bench.core.config import RunConfig

    spent = {"eval": 0.0}
    runner.full_train_loss = _stopwatch(runner.full_train_loss, spent)
    print("| sweep entry | method | evaluations | eval (s) | train (s) | eval / train |")
    print("|---|---|---:|---:|---:|---:|")
    tot_e = tot_t = 0.0
    seen = set()
    for job in _jobs(config_path):
        if job.seed != 0 or (job.problem_id, job.method) in seen:
            continue
        seen.add((job.problem_id, job.method))
        cfg = RunConfig.from_dict(job.resolved)
        problem_cls = runner.PROBLEMS.get(cfg.problem)
        original_eval = problem_cls.evaluate
        problem_cls.evaluate = _stopwatch(original_eval, spent)
        spent["eval"] = 0.0
        torch.set_num_threads(1)
        try:
            result = runner.run(cfg)
        finally:
            problem_cls.evaluate = original_eval
        s = result.summary.iloc[0]
        train = float(s["train_time_s"])
        tot_e += spent["eval"]
        tot_t += train
        print(
            f"| {job.problem_id} | {job.method} | {len(result.history)} | {spent['eval']:.2f} | {train:.2f} | "
            f"{spent['eval'] / train:.2f} |",
            flush=True,
        )
    print(f"| **all** | | | {tot_e:.1f} | {tot_t:.1f} | {tot_e / tot_t:.2f} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("fixed", "eval", "all"), default="all")
    ap.add_argument("--config", type=Path, default=ROOT / "workflow" / "config" / "default.yaml")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", nargs="*", help="sweep entry ids (default: all)")
    ap.add_argument("--method", default="adam", help="method of the fixed-cost runs (default adam)")
    args = ap.parse_args(argv)
    if args.part in ("fixed", "all"):
        fixed_cost(args.config, args.repeats, args.only, args.method)
    if args.part in ("eval", "all"):
        eval_share(args.config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
