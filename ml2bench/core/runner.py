"""The training loop shared by all methods: budgets, evaluation points, records.

One run = one (problem, method, seed, hyper-parameters). The loop times only training (the
clock is paused, and CUDA synchronised, around evaluations), stops at the first budget reached,
records a diverging run as ``diverged`` and an exception as ``failed`` instead of crashing the
caller (a sweep goes on), and returns tidy tables (see :mod:`ml2bench.core.records`).

Equal work: a ``work_units`` or ``grad_evals`` budget is a limit of the shared
:class:`~ml2bench.core.objective.WorkCounter`, which refuses (raises
:class:`~ml2bench.core.objective.BudgetExhausted`) any evaluation that would exceed it, inside a
step as well; the run then ends at the method's iterate, so no run is charged more than its
budget. Evaluation points come after a step once ``eval_interval`` work units have passed, and
also inside a step at the method's checkpoints (:meth:`~ml2bench.methods.base.Method.checkpoint`:
after each smoothing iteration or coarse correction of a cycle), uncharged and untimed.
"""

from __future__ import annotations

import json
import math
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ml2bench.core import checkpoint as ckpt
from ml2bench.core.config import RunConfig, target_reached
from ml2bench.core.cost import provenance
from ml2bench.core.cost.capacity import check_model_fits
from ml2bench.core.cost.energy import EnergyMeter
from ml2bench.core.objective import BudgetExhausted, WorkCounter
from ml2bench.core.stop import StopReason
from ml2bench.methods import METHODS, Method
from ml2bench.problems import PROBLEMS, Problem

DIVERGENCE_FACTOR = 1e8  # a loss this many times above the initial one counts as diverged
COUNTED_BUDGETS = ("grad_evals", "work_units")  # budgets the work counter enforces per evaluation


@dataclass
class RunResult:
    history: pd.DataFrame
    summary: pd.DataFrame

    @property
    def status(self) -> str:
        return str(self.summary["status"].iloc[0])


def derive_seeds(seed: int) -> dict[str, int]:
    """Independent seeds per purpose, so changing e.g. the batch order never changes the init."""
    children = np.random.SeedSequence(seed).spawn(3)
    names = ("data", "init", "order")
    return {n: int(c.generate_state(1, dtype=np.uint32)[0]) for n, c in zip(names, children)}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        from ml2bench.core.params import ConfigError

        raise ConfigError("device 'cuda' requested but torch.cuda.is_available() is False; allowed here: cpu, auto")
    return torch.device(name)


class _Clock:
    """Accumulates training time; synchronises CUDA before each reading so kernels are counted."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.total = 0.0
        self._t0: float | None = None

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def start(self) -> None:
        self._t0 = self._now()

    def stop(self) -> None:
        assert self._t0 is not None
        self.total += self._now() - self._t0
        self._t0 = None


def full_train_loss(problem: Problem, method: Method) -> float:
    """Mean training loss over the whole training set (not charged as work)."""
    objective = method.hierarchy.fine
    f = objective.fmodel(method.x.detach())
    total, n = 0.0, 0
    for batch in problem.train_batches(None, torch.Generator().manual_seed(0)):
        with torch.enable_grad():
            total += float(problem.loss(f, batch).detach()) * batch.size
        n += batch.size
    return total / n


def run(
    config: RunConfig,
    progress: bool = False,
    checkpoint: str | Path | None = None,
    save_model: str | Path | None = None,
) -> RunResult:
    """Train once as ``config`` says; never raises for a diverged or failing method.

    ``checkpoint``: the file of :mod:`ml2bench.core.checkpoint` (written every
    ``config.checkpoint_every`` iterations; a run finding one of its configuration resumes from it).
    ``save_model``: where the trained network's ``state_dict`` goes (``torch.save``; loadable into
    the problem's ``build_model(0)``), unless the run failed."""
    device = resolve_device(config.device)
    threads_before = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _run(config, device, progress, checkpoint, save_model)
    finally:
        torch.set_num_threads(threads_before)


def _run(
    config: RunConfig,
    device: torch.device,
    progress: bool,
    checkpoint: str | Path | None,
    save_model: str | Path | None,
) -> RunResult:
    dtype = getattr(torch, config.dtype)
    seeds = derive_seeds(config.seed)
    problem_cls = PROBLEMS.get(config.problem)
    method_cls = METHODS.get(config.method)
    started = time.time()
    wall0 = time.perf_counter()

    problem = problem_cls(config.problem_params, seed=seeds["data"], device=device, dtype=dtype)
    check_model_fits(problem, device, dtype)  # bad input (ConfigError), before any allocation
    counter = WorkCounter()
    levels = method_cls.levels_required(config.method_params)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seeds["init"])
        hierarchy = problem.hierarchy(levels, counter)
    graphs = _graph_mode(config, device)
    for objective in hierarchy.objectives:
        objective.graphs = graphs
    x0 = hierarchy.fine.initial_x()
    method = method_cls(hierarchy, x0, config.method_params)
    counter.limits = {k: float(config.budget[k]) for k in COUNTED_BUDGETS if config.budget.get(k) is not None}
    sampler = None
    if hasattr(method, "set_sampler"):  # a method that draws its own (growing) batches: rmtr batch_growth
        from ml2bench.numerics.sampling import BatchSampler

        sampler = BatchSampler(
            problem.train_batches, problem.n_train, torch.Generator().manual_seed(seeds["order"] + 1)
        )
        method.set_sampler(sampler)
    batch_size = config.batch_size
    if batch_size is None and not method_cls.uses_full_batch(method.hp):
        batch_size = problem_cls.default_batch_size
    if batch_size is not None:  # a batch never exceeds the data: record the size actually used
        batch_size = min(batch_size, problem.n_train)
    if method_cls.uses_hvp(method.hp):  # measured once, before the clock starts, on the run's first batch
        hierarchy.measure_hvp_costs(
            next(iter(problem.train_batches(batch_size, torch.Generator().manual_seed(seeds["order"]))))
        )
    order = torch.Generator().manual_seed(seeds["order"])
    budget = config.budget

    rows: list[dict[str, Any]] = []
    clock = _Clock(device)
    meter = EnergyMeter.for_device(device)
    energy_train = {"energy_cpu_j": 0.0, "energy_dram_j": 0.0, "energy_gpu_j": 0.0, "energy_j": 0.0}
    # first_change: work units at the first step end or checkpoint after the last evaluation point
    state = {"iteration": 0, "samples": 0, "step_loss": math.nan, "first_change": None}
    config_hash = config.hash()  # in every history row: binds the history to its summary

    def record() -> dict[str, Any]:
        nonlocal next_eval
        reading = meter.read()
        for key in energy_train:  # accumulate the energy of the training segment just ended
            energy_train[key] += reading[key]
        f = hierarchy.fine.fmodel(method.x.detach())
        metrics = problem.evaluate(f)
        first_change = state["first_change"]
        row = {
            "problem": config.problem,
            "method": config.method,
            "seed": config.seed,
            "config_hash": config_hash,
            "epoch": state["samples"] / problem.n_train,
            "iteration": state["iteration"],
            "grad_evals": counter.grad_evals,
            "work_units": counter.work_units,
            "work_units_parallel": counter.work_units_parallel,
            "work_units_resolution": 0.0 if first_change is None else counter.work_units - first_change,
            "train_time_s": clock.total,
            **energy_train,
            "train_loss": full_train_loss(problem, method),
            "step_loss": state["step_loss"],
            "val_loss": metrics.get("val_loss", math.nan),
            "val_metric": metrics.get("val_metric", math.nan),
            "test_loss": metrics["test_loss"],
            "test_metric": metrics["test_metric"],
        }
        rows.append(row)
        state["first_change"] = None
        next_eval = (math.floor(counter.work_units / config.eval_interval) + 1) * config.eval_interval
        meter.start()  # the next segment starts after evaluation
        return row

    def unrecorded_work() -> bool:
        return counter.work_units > rows[-1]["work_units"]

    def changed() -> None:
        """A step ended or the method reached a checkpoint: its iterate may have moved (if it
        evaluated anything since the last evaluation point)."""
        if state["first_change"] is None and unrecorded_work():
            state["first_change"] = counter.work_units

    def at_checkpoint(_method: Method, coarse_next: bool) -> None:
        """An evaluation point inside a step, on the same schedule; and before a coarse phase
        (long: its work would otherwise blur the time to target of the iterate before it)."""
        changed()
        if counter.work_units >= next_eval or (coarse_next and unrecorded_work()):
            clock.stop()
            record()
            clock.start()

    def reached_target() -> bool:
        """Whether an evaluation point recorded since the last check reached the run's target."""
        return any(target_reached(config.target, r) for r in rows[checked:])

    error, stop_reason = "", None
    checked = 0  # rows before this index were checked against the target
    bar = _progress_bar(progress, config, budget)
    every = config.checkpoint_every if checkpoint is not None else None
    skip = 0  # batches of the first epoch already used before a resume
    next_eval = config.eval_interval
    try:
        meter.start()
        resumed = ckpt.load(checkpoint, config.hash()) if every else None
        if resumed is not None:
            ckpt.restore(resumed, method, counter, sampler)
            state.update(resumed["state"])
            rows[:], clock.total = resumed["rows"], resumed["train_time_s"]
            energy_train.update(resumed["energy"])
            initial, next_eval, skip = resumed["initial"], resumed["next_eval"], resumed["position"]
            order.set_state(resumed["order"])
        else:
            initial = record()["train_loss"]  # sets next_eval
        checked = len(rows) - 1  # rows from here on may reach the target (the initial one too)
        if not math.isfinite(initial):
            stop_reason = StopReason.DIVERGED
        elif reached_target():
            stop_reason = StopReason.TARGET  # the initial iterate already meets it: no work spent
        method.observer = at_checkpoint
        while stop_reason is None:
            epoch_start, position = order.get_state(), 0
            for batch in problem.train_batches(batch_size, order):
                position += 1
                if position <= skip:
                    continue
                charged = counter.grad_evals
                clock.start()
                try:
                    result = method.step(batch)
                except BudgetExhausted as exhausted:  # refused mid-step: the run ends at the method's iterate
                    clock.stop()
                    stop_reason = StopReason.budget(exhausted.name)
                    if unrecorded_work():
                        record()
                    if reached_target():  # at a checkpoint of this step, before the budget ran out
                        stop_reason = StopReason.TARGET
                    break
                clock.stop()
                changed()
                state["iteration"] += 1
                state["samples"] += int(result.info.get("samples", batch.size))  # own batches: what the method drew
                state["step_loss"] = result.loss
                if not math.isfinite(result.loss) or abs(result.loss) > DIVERGENCE_FACTOR * max(1.0, abs(initial)):
                    stop_reason = StopReason.DIVERGED
                elif result.stop_reason:  # the method's own reason (grad_tol when it converged)
                    stop_reason = StopReason.parse(result.stop_reason)
                elif counter.grad_evals == charged:
                    # a step that evaluated nothing cannot move: stop instead of looping forever
                    stop_reason = StopReason.NO_EVALUATION
                elif reached := _budget_reached(budget, state, counter, clock.total, problem.n_train):
                    stop_reason = StopReason.budget(reached)
                if stop_reason is not None or counter.work_units >= next_eval:
                    row = record()
                    if stop_reason is None and not math.isfinite(row["train_loss"]):
                        stop_reason = StopReason.DIVERGED
                    bar.update(_bar_position(budget, state, counter, clock.total, problem.n_train) - bar.n)
                    bar.set_postfix(loss=f"{row['train_loss']:.3g}", metric=f"{row['test_metric']:.3g}")
                if stop_reason != StopReason.DIVERGED and reached_target():
                    # at a checkpoint inside this step or at its end: before (or with) any other reason
                    if unrecorded_work():  # reached at a checkpoint: record where the step ended
                        record()
                    stop_reason = StopReason.TARGET if math.isfinite(rows[-1]["train_loss"]) else StopReason.DIVERGED
                checked = len(rows)
                if stop_reason is not None:
                    break
                if every and state["iteration"] % every == 0:
                    loop = {"state": state, "rows": rows, "train_time_s": clock.total, "energy": energy_train}
                    loop.update(initial=initial, next_eval=next_eval, order=epoch_start, position=position)
                    ckpt.save(
                        checkpoint, {"config_hash": config.hash(), **ckpt.snapshot(method, counter, sampler, loop)}
                    )
            skip = 0
        if save_model is not None:
            hierarchy.fine.load(method.x)
            ckpt.save(save_model, hierarchy.fine.model.state_dict())
    except Exception as exc:  # recorded, not raised: one failing run must not stop a sweep
        stop_reason = StopReason.FAILED
        error = "".join(traceback.format_exception_only(exc)).strip()
        if progress:
            traceback.print_exc(file=sys.stderr)
    finally:
        bar.close()
        method.close()
    status = stop_reason.status  # ok only for a convergence criterion (StopReason)

    history = pd.DataFrame(rows, columns=list(_history_columns()))
    summary = _summary(
        config,
        problem_cls,
        method_cls,
        history,
        status,
        stop_reason,
        error,
        counter,
        clock,
        levels,
        batch_size,
        device,
        meter,
        started,
        time.perf_counter() - wall0,
        state,
    )
    # cost of each level relative to the finest (objective.cost_ratio; 1.0 first): where depth coarsening pays
    summary["level_cost_ratios"] = json.dumps([round(float(o.cost_ratio), 6) for o in hierarchy.objectives])
    return RunResult(history, summary)


def _graph_mode(config: RunConfig, device: torch.device) -> str:
    """Objective.graphs for this run: CUDA graphs by default on CUDA (``cuda_graphs: false`` turns
    them off); never on CPU, where there is nothing to capture."""
    if config.cuda_graphs is None:
        return "cuda" if device.type == "cuda" else "off"
    if config.cuda_graphs and device.type != "cuda":
        from ml2bench.core.params import ConfigError

        raise ConfigError(
            f"cuda_graphs=true needs device cuda, got device {device.type!r}; allowed on cpu: false or null"
        )
    return "cuda" if config.cuda_graphs else "off"


def _history_columns():
    from ml2bench.core.records import HISTORY_COLUMNS

    return HISTORY_COLUMNS.keys()


def _budget_reached(budget: dict, state: dict, counter: WorkCounter, train_time: float, n_train: int) -> str:
    """The first budget key that is reached ('' while none is)."""
    checks = {
        "epochs": state["samples"] / n_train,
        "grad_evals": counter.grad_evals,
        "work_units": counter.work_units,
        "time_s": train_time,
        "iterations": state["iteration"],
    }
    return next((k for k, v in checks.items() if budget.get(k) is not None and v >= budget[k]), "")


def _bar_position(budget, state, counter, train_time, n_train) -> float:
    """Progress in percent of the budget that is closest to being reached."""
    fractions = [0.0]
    for key, value in (
        ("epochs", state["samples"] / n_train),
        ("grad_evals", counter.grad_evals),
        ("work_units", counter.work_units),
        ("time_s", train_time),
        ("iterations", state["iteration"]),
    ):
        if budget.get(key):
            fractions.append(value / budget[key])
    return min(100.0, 100.0 * max(fractions))


def _progress_bar(enabled: bool, config: RunConfig, budget: dict):
    from tqdm.auto import tqdm

    return tqdm(
        total=100.0,
        desc=f"{config.problem}/{config.method}/seed{config.seed}",
        unit="%",
        disable=not enabled,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}% [{elapsed}<{remaining}{postfix}]",
    )


def _summary(
    config,
    problem_cls,
    method_cls,
    history,
    status,
    stop_reason,
    error,
    counter,
    clock,
    levels,
    batch_size,
    device,
    meter,
    started,
    wall,
    state,
) -> pd.DataFrame:
    last = history.iloc[-1] if len(history) else None
    higher = problem_cls.metric_higher_is_better

    def best(column: str) -> float:
        values = history[column]
        return float(values.max() if higher else values.min()) if values.notna().any() else math.nan

    def final(column: str) -> float:
        return float(last[column]) if last is not None else math.nan

    row: dict[str, Any] = {
        "problem": config.problem,
        "method": config.method,
        "seed": config.seed,
        "status": status,
        "stop_reason": stop_reason.value,
        "error": error,
        "metric_name": problem_cls.metric_name,
        "metric_higher_is_better": higher,
        "selection_quantity": problem_cls.selection_quantity,
        "final_train_loss": final("train_loss"),
        "final_val_loss": final("val_loss"),
        "final_val_metric": final("val_metric"),
        "final_test_loss": final("test_loss"),
        "final_test_metric": final("test_metric"),
        "best_train_loss": history["train_loss"].min() if len(history) else math.nan,
        "best_val_metric": best("val_metric"),
        "best_test_metric": best("test_metric"),
        "iterations": state["iteration"],
        "epochs": last["epoch"] if last is not None else 0.0,
        "grad_evals": counter.grad_evals,
        "work_units": counter.work_units,
        "work_units_parallel": counter.work_units_parallel,
        "train_time_s": clock.total,
        "wall_time_s": wall,
        "energy_j": last["energy_j"] if last is not None else math.nan,
        "energy_source": meter.source,
        "levels": levels,
        "batch_size": batch_size if batch_size is not None else -1,
        "dtype": config.dtype,
        "budget": json.dumps(config.budget, sort_keys=True),
        "problem_params": json.dumps(config.problem_params, sort_keys=True),
        "method_params": json.dumps(config.method_params, sort_keys=True),
        "config_hash": config.hash(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
    }
    row.update(provenance.collect(device))
    return pd.DataFrame([row])
