"""Tidy result tables and their atomic, loss-free writing.

A run produces two parquet tables: ``history`` (one row per evaluation point) and ``summary``
(one row per run). Files are written to a temporary name in the same directory and renamed, so a
reader never sees half a file; a failed run never replaces the records of a finished one. Files
get the permissions the umask allows (0644 under the usual 022: collaborators on a shared
cluster can read them), not mkstemp's owner-only 0600. One writer per run directory: a second
``ml2bench run`` into the same folder is refused while the first holds its lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import tempfile
from collections.abc import Iterator
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

# The summary table's columns in the order the runner writes them (tests/test_records.py checks the
# order against a real run; docs/records.md is generated from this by tools/records_doc.py).
SUMMARY_COLUMNS = {
    "problem": "registered problem name",
    "method": "registered method name",
    "seed": "run seed (data, initialisation and batch-order seeds are derived from it)",
    "status": "ok (a stated convergence criterion holds), stopped (the method could not go on without "
    "converging), budget_exhausted, diverged (loss NaN/inf or exploded) or failed (an exception)",
    "stop_reason": "why the run ended: the method's criterion or reason (e.g. grad_tol, roundoff, stalled), "
    "budget:<key> for the first budget reached, no_evaluation, diverged or failed",
    "error": "the exception of a failed run ('' otherwise)",
    "metric_name": "name of the test metric (accuracy, rel_l2)",
    "metric_higher_is_better": "true when a larger test metric is better (accuracy)",
    "final_train_loss": "train_loss at the last evaluation point",
    "final_test_loss": "test_loss at the last evaluation point",
    "final_test_metric": "test_metric at the last evaluation point",
    "best_train_loss": "lowest train_loss over the evaluation points",
    "best_test_metric": "best test_metric over the evaluation points (by metric_higher_is_better)",
    "iterations": "method steps taken",
    "epochs": "passes over the training data drawn by the sampler",
    "grad_evals": "total evaluations in units of one full-batch evaluation (as in the history)",
    "work_units": "total evaluations weighted by their level's FLOP ratio (as in the history)",
    "train_time_s": "total training wall time, evaluation excluded",
    "wall_time_s": "wall time of the whole run: set-up, training and evaluation",
    "energy_j": "energy_j at the last evaluation point (NaN: no counter)",
    "energy_source": "energy counters read: rapl, nvml, rapl+nvml or none (never estimated)",
    "levels": "levels of the hierarchy the method used (1 for single-level methods)",
    "batch_size": "mini-batch size actually used, at most n_train (-1: full batch)",
    "dtype": "floating-point type of the run (float32, float64)",
    "budget": "the resolved budget as JSON",
    "problem_params": "the resolved problem hyper-parameters as JSON",
    "method_params": "the resolved method hyper-parameters as JSON",
    "config_hash": "first 16 hex digits of SHA-256 over the resolved run config",
    "started_at": "local start time, ISO 8601 with offset",
    "ml2bench_version": "installed ml2bench version",
    "python_version": "Python version",
    "torch_version": "torch version",
    "numpy_version": "numpy version",
    "pandas_version": "pandas version",
    "torch_threads": "torch intra-op threads of the run",
    "device": "torch device of the run (cpu, cuda, cuda:0, ...)",
    "cpu_model": "CPU model name",
    "gpu_model": "GPU model name on CUDA, none otherwise",
    "hostname": "host name",
    "git_commit": "commit of ml2bench's own checkout (-dirty with uncommitted changes); none when the package "
    "is not in ml2bench's repository, unknown when git cannot tell",
    "source_hash": "first 16 hex digits of SHA-256 over the package's .py files",
    "level_cost_ratios": "JSON list: each level's cost relative to the finest (1.0 first), as charged in work_units",
}
# The summary columns that are measured numbers, what a table or a claim compares
# (ml2bench/analysis/claims.py accepts each as a claim's `metric`); the others say what ran and why it ended.
SUMMARY_MEASURES = (
    "final_train_loss",
    "final_test_loss",
    "final_test_metric",
    "best_train_loss",
    "best_test_metric",
    "iterations",
    "epochs",
    "grad_evals",
    "work_units",
    "train_time_s",
    "wall_time_s",
    "energy_j",
    "levels",
    "batch_size",
)

SUMMARY_STATUS = ("ok", "stopped", "diverged", "budget_exhausted", "failed")
FINISHED = ("ok", "stopped", "diverged", "budget_exhausted")
# why a run ended (summary column ``stop_reason``): the method's own reason when it stopped
# (``ok`` only for a convergence criterion such as ``grad_tol``; ``stopped`` for ``roundoff``,
# ``stalled``, ``model_failed``, ...), ``budget:<key>`` for the first budget reached,
# ``no_evaluation`` for a step that evaluated nothing, ``diverged`` or ``failed``.


LOCK_NAME = ".ml2bench.lock"


class OutputError(OSError):
    """The output location cannot take a run's records (not a folder, not writable, in use)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_parquet_atomic(df: pd.DataFrame, path: str | Path) -> None:
    """Write ``df`` to ``path`` via a temporary file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600; a result file is as readable as any other
    finally:
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


def check_output_dir(out_dir: str | Path) -> Path:
    """Create ``out_dir`` and prove a file can be written there, *before* training.

    Raises :class:`OutputError` naming the folder: an empty path (it would mean the current
    directory), a path that is a file, or a folder where a file cannot be created (read-only,
    no space, permission). The probe is a real create + delete, not ``os.access`` (which says
    yes to root on a read-only export and knows nothing of quotas).
    """
    if not str(out_dir).strip():
        raise OutputError(
            f"--out {str(out_dir)!r}: an output folder is required (not the current directory); "
            f"allowed: a path such as results/runs/demo"
        )
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {str(out)!r} is an existing file; allowed: a folder (new or existing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".ml2bench-write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutputError(
            f"--out {str(out)!r} is not writable ({err.strerror or err}); allowed: a folder "
            f"where this user can create files"
        ) from None
    return out


@contextlib.contextmanager
def claim_output(out_dir: str | Path) -> Iterator[Path]:
    """:func:`check_output_dir` + :func:`run_lock`; folders created here are removed again when
    the body raises before writing anything (bad input leaves no trace)."""
    out = Path(out_dir)
    created = []
    probe = out
    while str(probe) not in ("", ".", "/") and not probe.exists():
        created.append(probe)
        probe = probe.parent
    try:
        check_output_dir(out_dir)
        with run_lock(out):
            yield out
    except BaseException:
        for d in created:  # innermost first; stops at the first folder that holds something
            try:
                d.rmdir()
            except OSError:
                break
        raise


@contextlib.contextmanager
def run_lock(out_dir: str | Path) -> Iterator[Path]:
    """Hold ``out_dir/.ml2bench.lock`` (``flock``, released by the kernel even after kill -9).

    A second writer gets :class:`OutputError` naming the holder instead of racing. The lock file
    is removed on release; a writer that locked a file just unlinked by the previous holder
    notices (different inode) and locks the new one.
    """
    path = Path(out_dir) / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise OutputError(
                f"--out {str(out_dir)!r} is in use by another ml2bench run ({holder}); allowed: "
                f"one writer per run folder — wait for it or choose another --out"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        os.close(fd)


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
