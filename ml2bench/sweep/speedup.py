"""The parallel speed-up of additive Schwarz, measured where it can show (``claims_speedup:`` in a
sweep config, the claims of ``kind: speedup``; the rule ``speedup`` writes results/tables/speedup.csv).

Per entry and repeat, the same SPQN iterations run through the runner twice, adjacent in time: one
process with one torch thread, and ``processes`` processes with one thread each (gloo, spawned by
the method): the ratio of their train times is the measured speed-up (one thread per process in
both, so it measures the decomposition's parallelism, not intra-op threading).

Beside it, two things that decide what the speed-up can mean:

* **the local/global split**, from one sequential run of the same iterations (same seed: the same
  iterates) with the method driven here: the share of the work units, and of the wall time, spent in
  the additive local phases (:attr:`ml2bench.dd.core.SchwarzCore.local_phase_work`). The rest (the
  global line search, the L-BFGS steps) every rank repeats. The analysis prints the Amdahl ceiling
  1 / ((1 − p) + p / P) of the work share p beside the measured speed-up.
* **the machine's idle cores during each timed run**: the busy CPU time of the cores this process
  may run on (``os.sched_getaffinity``, per-core counters of psutil) minus this process tree's own
  CPU time, divided by the wall time, is the load of everything else; idle = cores − that load.
  With fewer idle cores than processes the processes share cores and the ratio measures the load,
  so the claim's verdict is "not tested at this size" (:mod:`ml2bench.analysis.claims`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ml2bench.core.params import ConfigError
from ml2bench.core.records import RUN_KEYS, write_parquet_atomic

MEASURES = (
    "speedup",
    "train_time_seq_s",
    "train_time_par_s",
    "local_work_share",
    "local_time_share",
    "idle_cores",
    "cores",
    "processes",
)
METHOD = "schwarz"
DEFAULTS = {"processes": 2, "iterations": 3, "repeats": 6, "seed": 0}


def point(processes: int) -> str:
    return f"processes~{processes}"


def run_configs(spec: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(sequential, parallel) raw run configs of one ``claims_speedup`` entry, validated
    (:meth:`RunConfig.from_dict`: ConfigError naming the bad value)."""
    from ml2bench.core.config import RunConfig  # torch: not at import (the claims' spec imports this module)

    spec = {**DEFAULTS, **spec}
    mp = {**(spec.get("method_params") or {}), "variant": "additive", "threads_per_process": 1}
    base = {
        "problem": spec["problem"],
        "method": METHOD,
        "seed": int(spec["seed"]),
        "problem_params": dict(spec.get("params") or {}),
        "budget": {"iterations": int(spec["iterations"])},
        "eval_interval": 1e9,  # no evaluation inside the timed iterations
        "threads": 1,
        "device": "cpu",
    }
    seq = {**base, "method_params": {**mp, "parallel": False}}
    par = {**base, "method_params": {**mp, "parallel": True, "processes": int(spec["processes"])}}
    for raw in (seq, par):
        try:
            RunConfig.from_dict(raw)
        except ConfigError as err:
            raise ConfigError(f"claims_speedup {spec.get('id', '?')!r}: {err}") from None
    return seq, par


def speedup_points(config: Mapping[str, Any]) -> dict[str, dict[str, set[str]]]:
    """{id: {"schwarz": {point}}} of the config's ``claims_speedup`` entries (each checked)."""
    out = {}
    for spec in config.get("claims_speedup") or []:
        run_configs(spec)
        out[str(spec["id"])] = {METHOD: {point(int(spec.get("processes", DEFAULTS["processes"])))}}
    return out


def cores() -> list[int]:
    """The CPUs this process may run on."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


@dataclass
class LoadProbe:
    """Idle cores over an interval: (busy CPU seconds of ``cpus``) − (this process tree's CPU
    seconds), per wall second, is the load of everything else (children count once reaped)."""

    cpus: list[int]

    def __enter__(self) -> LoadProbe:
        self.t0, self.busy0, self.own0 = time.perf_counter(), self._busy(), self._own()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = max(time.perf_counter() - self.t0, 1e-9)
        others = (self._busy() - self.busy0) - (self._own() - self.own0)
        self.idle = min(len(self.cpus), max(0.0, len(self.cpus) - others / wall))

    def _busy(self) -> float:
        import psutil

        per_cpu = psutil.cpu_times(percpu=True)
        fields = ("user", "nice", "system", "irq", "softirq", "steal")
        return sum(getattr(per_cpu[c], f, 0.0) for c in self.cpus if c < len(per_cpu) for f in fields)

    @staticmethod
    def _own() -> float:
        import psutil

        t = psutil.Process().cpu_times()
        return t.user + t.system + t.children_user + t.children_system


def local_split(raw: Mapping[str, Any]) -> tuple[float, float]:
    """(work share, time share) of the additive local phases in the iterations of a sequential
    run config: the method stepped here on the problem and seed the runner would build."""
    import torch

    from ml2bench.core.config import RunConfig
    from ml2bench.core.objective import WorkCounter
    from ml2bench.core.runner import derive_seeds
    from ml2bench.methods import METHODS
    from ml2bench.problems import PROBLEMS

    config = RunConfig.from_dict(raw)
    seeds = derive_seeds(config.seed)
    problem = PROBLEMS.get(config.problem)(
        config.problem_params, seed=seeds["data"], device=torch.device("cpu"), dtype=torch.float32
    )
    counter = WorkCounter()
    with torch.random.fork_rng():
        torch.manual_seed(seeds["init"])
        hierarchy = problem.hierarchy(1, counter)
    method = METHODS.get(METHOD)(hierarchy, hierarchy.fine.initial_x(), config.method_params)
    batch = next(iter(problem.train_batches(None, torch.Generator().manual_seed(seeds["order"]))))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        for _ in range(int(config.budget["iterations"])):
            if method.step(batch).stop_reason is not None:
                break
        wall = time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)
        method.close()
    core = method.core
    return core.local_phase_work / max(counter.work_units, 1e-300), core.local_phase_time_s / max(wall, 1e-300)


def speedup_table(spec: Mapping[str, Any]) -> pd.DataFrame:
    """One row per repeat of one entry: train times, speed-up, local shares, idle cores (the fewer
    of the two timed runs'), cores and processes."""
    from ml2bench.sweep.inprocess import run_many

    seq, par = run_configs(spec)
    spec = {**DEFAULTS, **spec}
    work_share, time_share = local_split(seq)
    cpus = cores()
    rows = []
    for r in range(int(spec["repeats"])):
        times, idle = {}, math.inf
        for name, raw in (("seq", seq), ("par", par)):
            with LoadProbe(cpus) as probe:
                summary = next(run_many([raw])).summary
            if summary["status"] == "failed":
                raise RuntimeError(f"claims_speedup {spec['id']!r}: the {name} run failed: {summary['error']}")
            times[name], idle = float(summary["train_time_s"]), min(idle, probe.idle)
        rows.append(
            {
                "problem_id": str(spec["id"]),
                "method": METHOD,
                "point": point(int(spec["processes"])),
                "seed": int(spec["seed"]),
                "repeat": r,
                "speedup": times["seq"] / times["par"],
                "train_time_seq_s": times["seq"],
                "train_time_par_s": times["par"],
                "local_work_share": work_share,
                "local_time_share": time_share,
                "idle_cores": idle,
                "cores": len(cpus),
                "processes": int(spec["processes"]),
            }
        )
    return pd.DataFrame(rows)


def write_speedup(config: Mapping[str, Any], out: str | Path) -> Path:
    """``speedup.csv`` for the config's ``claims_speedup`` entries (written atomically)."""
    frames = [speedup_table(spec) for spec in config.get("claims_speedup") or []]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*RUN_KEYS, *MEASURES])
    write_parquet_atomic(table, out)  # a .csv path is written as CSV
    return Path(out)
