"""Tidy result tables and their atomic, loss-free writing.

A run produces two parquet tables: ``history`` (one row per evaluation point) and ``summary``
(one row per run). Files are written to a temporary name in the same directory and renamed, so a
reader never sees half a file; a failed run never replaces the records of a finished one.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

HISTORY_COLUMNS = {
    "problem": "registered problem name",
    "method": "registered method name",
    "seed": "run seed",
    "epoch": "passes over the training data drawn by the sampler so far",
    "iteration": "method steps so far",
    "grad_evals": "gradient/function evaluations in units of one full-batch evaluation on any level",
    "work_units": "evaluations weighted by their level's FLOP ratio to the finest level",
    "train_time_s": "training wall time so far (evaluations of the test metric excluded)",
    "energy_cpu_j": "CPU package energy so far from RAPL (NaN: no counter)",
    "energy_dram_j": "DRAM energy so far from RAPL (NaN: no counter)",
    "energy_gpu_j": "GPU energy so far from NVML (NaN: no counter)",
    "energy_j": "sum of the available energy counters (NaN: none)",
    "train_loss": "loss on the whole training set at this point",
    "step_loss": "loss the method saw on its last batch",
    "test_loss": "loss on the test set",
    "test_metric": "test metric (accuracy for classification, relative L2 error for PINNs)",
}

SUMMARY_STATUS = ("ok", "stopped", "diverged", "budget_exhausted", "failed")
FINISHED = ("ok", "stopped", "diverged", "budget_exhausted")
# why a run ended (summary column ``stop_reason``): the method's own reason when it stopped
# (``ok`` only for a convergence criterion such as ``grad_tol``; ``stopped`` for ``roundoff``,
# ``stalled``, ``model_failed``, ...), ``budget:<key>`` for the first budget reached,
# ``no_evaluation`` for a step that evaluated nothing, ``diverged`` or ``failed``.


def write_parquet_atomic(df: pd.DataFrame, path: str | Path) -> None:
    """Write ``df`` to ``path`` via a temporary file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        if path.suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def finished_run_exists(out_dir: str | Path) -> bool:
    """True when ``out_dir`` holds the summary of a run that finished (not ``failed``)."""
    summary = Path(out_dir) / "summary.parquet"
    if not summary.is_file():
        return False
    try:
        status = pd.read_parquet(summary, columns=["status"])["status"].iloc[0]
    except Exception:  # unreadable: treat as not finished, it will be replaced
        return False
    return status in FINISHED


def write_run(history: pd.DataFrame, summary: pd.DataFrame, out_dir: str | Path) -> Path:
    """Write a run's tables into ``out_dir`` and return the directory actually used.

    A failed run whose ``out_dir`` already holds a finished run goes to ``out_dir/failed/``
    instead, so nothing finished is lost.
    """
    out = Path(out_dir)
    if summary["status"].iloc[0] == "failed" and finished_run_exists(out):
        out = out / "failed"
    # history first: a summary is the marker of a complete run
    write_parquet_atomic(history, out / "history.parquet")
    write_parquet_atomic(summary, out / "summary.parquet")
    return out
