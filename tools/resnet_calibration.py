"""Calibration runs of the ResNet claims (docs/resnet.md): level cost ratios, runs on the
calibration seed, and the work at which each run first reaches a validation accuracy.

    python tools/resnet_calibration.py ratios
    python tools/resnet_calibration.py run conv_digits 200 smg=mgopt:'{"batching":"minibatch","lr":4.0}' ...
    python tools/resnet_calibration.py reach conv_digits 0.85 0.9

``run`` executes each LABEL=METHOD:JSON in turn through the runner (seed 1000, one thread, a
``work_units`` budget), writes OUT/PROBLEM/LABEL.csv (the history) and appends a summary line to
OUT/PROBLEM/summary.jsonl; ``reach`` reads those histories back. Why a tool and not
``python -m ml2bench.targets``: that command runs a config's whole entry at 4 x its budget, while
a calibration needs single methods and hyper-parameter points before the budget exists.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch

from ml2bench.core.config import RunConfig
from ml2bench.core.objective import WorkCounter
from ml2bench.core.runner import run
from ml2bench.problems import PROBLEMS

SEED = 1000  # the claims config's calibration seed (_target_rule), none of the evaluation seeds
DEEP = {"arch": "dense", "width": 8, "depth": 64, "n_train": 1000, "n_val": 500, "n_test": 1000}
PROBLEM_PARAMS = {  # the claims config's ResNet entries
    "conv_digits": {"dataset": "digits", "arch": "conv", "width": 8, "depth": 8, "n_train": 500},
    "resnet_peaks": {**DEEP, "dataset": "peaks"},
    "resnet_swiss_roll": {**DEEP, "dataset": "swiss_roll"},
}
RATIO_CASES = [  # (dataset, arch, width, depth, n_train)
    ("digits", "conv", 8, 8, 500),
    ("digits", "conv", 8, 16, 1000),
    ("digits", "conv", 16, 16, 1000),
    ("mnist1d", "conv", 16, 16, 2000),
    ("mnist1d", "conv", 32, 16, 2000),
    ("peaks", "dense", 8, 64, 1000),
    ("swiss_roll", "dense", 8, 64, 1000),
]


def ratios() -> None:
    """Each level's charged cost relative to the level above (FLOP-counted ``cost_ratio``)."""
    cls = PROBLEMS.get("resnet")
    for dataset, arch, width, depth, n_train in RATIO_CASES:
        hp = {"dataset": dataset, "arch": arch, "width": width, "depth": depth, "n_train": n_train}
        problem = cls(cls.params.validate(hp, "resnet"), seed=SEED, device=torch.device("cpu"), dtype=torch.float32)
        costs = [o.cost_ratio for o in problem.hierarchy(4, WorkCounter()).objectives]
        n = problem.hierarchy(1, WorkCounter()).fine.initial_x().numel()
        steps = [round(b / a, 3) for a, b in zip(costs, costs[1:])]
        print(f"{dataset} {arch} width {width} depth {depth}: {n} parameters, level / level above {steps}")


def calibrate(problem: str, budget: float, specs: list[str], out: Path) -> None:
    folder = out / problem
    folder.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        label, _, rest = spec.partition("=")
        method, _, params = rest.partition(":")
        config = {
            "problem": "resnet",
            "method": method,
            "seed": SEED,
            "problem_params": PROBLEM_PARAMS[problem],
            "method_params": json.loads(params) if params else {},
            "budget": {"work_units": budget},
            "threads": 1,
            "eval_interval": 5.0,
        }
        start = time.perf_counter()
        result = run(RunConfig.from_dict(config))
        result.history.to_csv(folder / f"{label}.csv", index=False)
        s = result.summary.iloc[0]
        line = {
            "label": label,
            "method": method,
            "params": config["method_params"],
            "stop": s["stop_reason"],
            "wu": round(float(s["work_units"]), 2),
            "best_val": float(result.history["val_metric"].max()),
            "wall_s": round(time.perf_counter() - start, 1),
        }
        with open(folder / "summary.jsonl", "a") as fh:
            fh.write(json.dumps(line) + "\n")
        print(json.dumps(line), flush=True)


def reach(problem: str, targets: list[float], out: Path) -> None:
    """Work units at the first evaluation point at or above each validation accuracy (inf: never)."""
    for path in sorted((out / problem).glob("*.csv")):
        h = pd.read_csv(path)
        cells = [f"{path.stem}: best {h['val_metric'].max():.3f} in {h['work_units'].iloc[-1]:.0f} WU"]
        for t in targets:
            hit = h[h["val_metric"] >= t - 1e-9]
            cells.append(f"{t}: {hit['work_units'].iloc[0]:.1f}" if len(hit) else f"{t}: inf")
        print(" | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/calibration"))
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("ratios")
    p_run = sub.add_parser("run")
    p_run.add_argument("problem", choices=sorted(PROBLEM_PARAMS))
    p_run.add_argument("budget", type=float)
    p_run.add_argument("specs", nargs="+", help="LABEL=METHOD:JSON")
    p_reach = sub.add_parser("reach")
    p_reach.add_argument("problem", choices=sorted(PROBLEM_PARAMS))
    p_reach.add_argument("targets", nargs="+", type=float)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.command == "ratios":
        ratios()
    elif args.command == "run":
        calibrate(args.problem, args.budget, args.specs, args.out)
    else:
        reach(args.problem, args.targets, args.out)


if __name__ == "__main__":
    main()
