"""Expected device time per job of a GPU sweep config, estimated on the CPU at hand (no GPU needed).

    python tools/device_time_estimate.py workflow/config/claims_gpu.yaml

Per sweep entry: the median seconds of one full-batch loss + gradient of the fine model (= 1 work unit)
on this CPU with 1 thread (3 timed calls after one warm-up), then the device estimate
``max(CPU s/WU / SPEEDUP, FLOOR_S x depth)`` and the job time ``work-unit budget x device s/WU``
(evaluations excluded). SPEEDUP is an assumed GPU-over-one-core throughput; the floor is the kernel
launches of a CUDA-graph-replayed step, calibrated on issue 14's one GPU number (a width-64 depth-8
Burgers PINN step on 10^4 points, ~2 ms as a graph). Both are assumptions: the output is an estimate.
``claims_speedup`` entries run on CPU: their line is the measured CPU time of their iterations.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from ml2bench.core.config import load_yaml
from ml2bench.core.objective import WorkCounter
from ml2bench.problems import PROBLEMS
from ml2bench.sweep.jobs import load_jobs

SPEEDUP = 30.0
FLOOR_S = 0.25e-3
EVALS_PER_ITERATION = 25  # an SPQN iteration: ~22 local evaluations + the global line search (issue 21)


def seconds_per_work_unit(problem: str, params: dict) -> float:
    prob = PROBLEMS.get(problem)(params, seed=0, device=torch.device("cpu"), dtype=torch.float32)
    fine = prob.hierarchy(1, WorkCounter()).fine
    x = fine.initial_x()
    batch = next(iter(prob.train_batches(None, torch.Generator().manual_seed(0))))
    fine.loss_grad(x, batch)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        fine.loss_grad(x, batch)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str]) -> int:
    path = argv[0] if argv else "workflow/config/claims_gpu.yaml"
    torch.set_num_threads(1)
    jobs = load_jobs(path)
    print("| entry | CPU s/WU (1 thread) | est. device s/WU | budget WU | est. device time per job | jobs |")
    print("|---|---:|---:|---:|---:|---:|")
    for entry in sorted({j.problem_id for j in jobs}, key=[j.problem_id for j in jobs].index):
        group = [j for j in jobs if j.problem_id == entry]
        job = group[0]
        cpu = seconds_per_work_unit(job.problem, job.problem_params)
        depth = int(job.problem_params.get("depth", 1))
        device = max(cpu / SPEEDUP, FLOOR_S * depth)
        wu = float(job.budget.get("work_units") or 0)
        print(f"| {entry} | {cpu:.3g} | {device:.3g} | {wu:g} | {wu * device:.3g} s | {len(group)} |", flush=True)
    for spec in load_yaml(path).get("claims_speedup") or []:
        cpu = seconds_per_work_unit(spec["problem"], dict(spec.get("params") or {}))
        per_run = cpu * EVALS_PER_ITERATION * int(spec.get("iterations", 3))
        repeats = int(spec.get("repeats", 6))
        print(
            f"| {spec['id']} (CPU processes) | {cpu:.3g} | - | - | {per_run * (1 + 2 * repeats):.3g} s CPU "
            f"(1 sequential split run + {repeats} x (1 + 1 parallel run), the parallel ones at most as long) | 1 |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
