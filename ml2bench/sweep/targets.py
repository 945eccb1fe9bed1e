"""Targets of a sweep's classification entries by one rule, and a sweep-time estimate.

Why: a time-to-target comparison means something only where the target means "solved". For
classification there is no absolute "solved", so the target is set relative to what the problem
allows at its size, by one rule applied to every entry (never by hand), on data no evaluation run
sees chosen on:

    target = floor_to_step(best - margin)

where ``best`` is the best *validation* accuracy reached at any evaluation point by any method
(every method and hyper-parameter point of the entry) in one long run: ``factor`` x the entry's
work-unit budget, on the calibration seed ``seed``, which must not be one of the sweep's
evaluation seeds (refused otherwise). Defaults (:data:`RULE`): factor 4, seed 1000, margin 0.02
(2 accuracy points), step 0.01; a config states its own in ``_target_rule`` (read here; the
command-line flags override it) and records the measured inputs in ``_measured_best``.

    python -m ml2bench.targets workflow/config/default.yaml            # runs, prints the targets
    python -m ml2bench.targets workflow/config/default.yaml --estimate # seed-0 runs at the sweep's
                                                                       # budget -> sweep-time estimate

The long runs use the runner API directly (one process, one run at a time, the config's thread
count). ``--estimate`` runs every job of seed 0 once at the configured budget and reports per entry
the summed wall time x number of seeds, i.e. the serial sweep time; divide by the cores the sweep
gets (two one-thread jobs on two cores).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ml2bench.core.params import ConfigError

RULE = {"factor": 4.0, "seed": 1000, "margin": 0.02, "step": 0.01}


def rule_target(best: float, margin: float = RULE["margin"], step: float = RULE["step"]) -> float:
    """``best - margin`` rounded down to a multiple of ``step`` (a target never above what the rule allows)."""
    k = math.floor(round((best - margin) / step, 6))
    return round(k * step, 10)


def config_rule(config: Mapping[str, Any]) -> dict[str, float]:
    """The config's ``_target_rule`` over :data:`RULE` (unknown keys refused)."""
    given = dict(config.get("_target_rule") or {})
    unknown = set(given) - set(RULE)
    if unknown:
        raise ConfigError(f"_target_rule: unknown keys {sorted(unknown)}; allowed: {', '.join(RULE)}")
    return {**RULE, **{k: float(v) for k, v in given.items()}}


def check_calibration_seed(config: Mapping[str, Any], seed: int) -> None:
    """The calibration seed is none of the sweep's evaluation seeds (the targets are chosen on it)."""
    for entry in config["sweeps"]:
        seeds = entry.get("seeds") or config.get("seeds") or [0, 1, 2]
        if seed in seeds:
            raise ConfigError(
                f"calibration seed {seed} is an evaluation seed of sweep {entry.get('id') or entry['problem']!r} "
                f"(seeds {', '.join(map(str, seeds))}); allowed: a seed outside the evaluation seeds"
            )


def _entries(config: Mapping[str, Any], ids: Iterable[str] | None, classification_only: bool) -> list[str]:
    from ml2bench.problems import PROBLEMS

    out = []
    for entry in config["sweeps"]:
        pid = entry.get("id") or entry["problem"]
        if ids and pid not in ids:
            continue
        if classification_only and not PROBLEMS.get(entry["problem"]).metric_higher_is_better:
            continue
        out.append(pid)
    return out


def run_jobs(
    configfile: str | Path,
    ids: Iterable[str] | None = None,
    seed: int = 0,
    factor: float = 1.0,
    classification_only: bool = False,
    log=sys.stderr,
) -> pd.DataFrame:
    """One run per (entry, method, point) of ``configfile`` at ``seed``, work-unit budget x ``factor``.

    Returns one row per run: ids, status, best/final validation metric (the final test metric
    beside it, reported only), train and wall time.
    """
    from ml2bench.sweep import jobs as sweep
    from ml2bench.sweep.inprocess import run_many

    try:
        config = sweep.load_config(configfile)
        sweep.validate_schema(config)
        jobs = sweep.expand(config)
    except sweep.SweepError as err:
        raise ConfigError(str(err)) from None
    wanted = set(_entries(config, ids, classification_only))
    selected, seen = [], set()
    for job in jobs:  # each (entry, method, point) once, at ``seed`` (which need not be an evaluation seed)
        if job.problem_id in wanted and (job.problem_id, job.method, job.point) not in seen:
            seen.add((job.problem_id, job.method, job.point))
            selected.append(job)
    configs = []
    for job in selected:
        budget = dict(job.resolved["budget"])
        if factor != 1.0:
            if budget.get("work_units") is None:
                raise ConfigError(f"sweep {job.problem_id!r}: --factor needs a work_units budget, got {budget}")
            budget["work_units"] = budget["work_units"] * factor
        # no stop at the target: these runs measure the best value reachable, which the target derives from
        configs.append({**job.resolved, "seed": seed, "budget": budget, "target": {}})
    rows = []
    for job, outcome in zip(selected, run_many(configs)):
        s, wall = outcome.summary, outcome.wall_s
        row = {
            "problem_id": job.problem_id,
            "method": job.method,
            "point": job.point,
            "seed": seed,
            "status": s["status"],
            "work_units": float(s["work_units"]),
            "best_val_metric": float(s["best_val_metric"]),
            "final_val_metric": float(s["final_val_metric"]),
            "final_test_metric": float(s["final_test_metric"]),
            "train_time_s": float(s["train_time_s"]),
            "wall_s": wall,
        }
        print(
            " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
            file=log,
            flush=True,
        )
        rows.append(row)
    return pd.DataFrame(rows)


def targets_by_rule(runs: pd.DataFrame, margin: float = RULE["margin"], step: float = RULE["step"]) -> pd.DataFrame:
    """Per entry: the best validation accuracy, who reached it (ties: the first run), the rule's target."""
    out = []
    for pid, g in runs.groupby("problem_id", sort=False):
        i = g["best_val_metric"].idxmax()
        best = float(g.loc[i, "best_val_metric"])
        out.append(
            {
                "problem_id": pid,
                "best": best,
                "best_by": f"{g.loc[i, 'method']}[{g.loc[i, 'point']}]",
                "target": rule_target(best, margin, step),
            }
        )
    return pd.DataFrame(out)


def sweep_estimate(runs: pd.DataFrame, n_seeds: int, cores: int) -> pd.DataFrame:
    """Per entry: serial seconds of all seeds (seed-0 wall x n_seeds) and that over ``cores``."""
    g = runs.groupby("problem_id", sort=False).agg(
        runs=("wall_s", "size"), wall_seed0_s=("wall_s", "sum"), train_seed0_s=("train_time_s", "sum")
    )
    g["serial_all_seeds_s"] = g["wall_seed0_s"] * n_seeds
    g["on_cores_s"] = g["serial_all_seeds_s"] / cores
    return g.reset_index()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml2bench.targets", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path, help="sweep config, e.g. workflow/config/default.yaml")
    parser.add_argument("--ids", nargs="*", help="only these sweep ids")
    parser.add_argument("--factor", type=float, help="budget factor of the long runs (default: the config's rule)")
    parser.add_argument("--seed", type=int, help="calibration seed (default: the config's rule; --estimate: 0)")
    parser.add_argument("--margin", type=float, help="default: the config's rule")
    parser.add_argument("--step", type=float, help="rounding step (default: the config's rule)")
    parser.add_argument(
        "--estimate",
        action="store_true",
        help="instead: run every entry's seed-0 jobs at the sweep's budget and estimate sweep time",
    )
    parser.add_argument("--cores", type=int, default=2, help="cores of the sweep (with --estimate)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the sweep (with --estimate)")
    args = parser.parse_args(argv)
    try:
        if args.estimate:
            runs = run_jobs(args.config, args.ids, seed=0 if args.seed is None else args.seed, factor=1.0)
            est = sweep_estimate(runs, args.seeds, args.cores)
            print(runs.to_string(index=False))
            print(est.to_string(index=False))
            print(
                f"total: {est['on_cores_s'].sum():.0f} s on {args.cores} cores "
                f"({est['serial_all_seeds_s'].sum():.0f} s serial)"
            )
            return 0
        from ml2bench.sweep import jobs as sweep

        try:
            config = sweep.load_config(args.config)
        except sweep.SweepError as err:
            raise ConfigError(str(err)) from None
        rule = config_rule(config)
        for key in RULE:
            if getattr(args, key) is not None:
                rule[key] = float(getattr(args, key))
        seed = int(rule["seed"])
        check_calibration_seed(config, seed)
        print(f"rule: {rule}", file=sys.stderr)
        runs = run_jobs(args.config, args.ids, seed=seed, factor=rule["factor"], classification_only=True)
        print(runs.to_string(index=False))
        print(targets_by_rule(runs, rule["margin"], rule["step"]).to_string(index=False))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
