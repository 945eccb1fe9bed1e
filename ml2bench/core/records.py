"""Tidy result tables and how a run's records reach the disk.

A run produces two parquet tables: ``history`` (one row per evaluation point) and ``summary``
(one row per run). Both carry the run's identity (problem, method, seed, config hash), so a file
that strays into another run's folder is recognised (:mod:`ml2bench.sweep.verify`).

**The two files are one unit** (:func:`commit`), as a database commits a transaction: both are
written into a private staging folder ``<run>/.staging-XXXX/`` and fsynced; the commit point is
one atomic ``rename`` of that folder to ``<run>/.commit/``; then each file is renamed over its
old version and ``.commit/`` is removed. Every byte is written before the commit point, so a
full disk, a quota or an I/O error removes the staging folder and leaves the previous pair as it
was; a crash after the commit point leaves a complete ``.commit/`` that :func:`recover` rolls
forward (the next writer of the folder does, and the workflow before it builds its DAG). A
reader thus sees the old pair or the new one, never one file of each. Single files (aggregated
tables) use :func:`write_parquet_atomic`: temporary file, fsync, ``os.replace``.

Files get the permissions the umask allows (0644 under the usual 022: collaborators on a shared
cluster can read them), not mkstemp's owner-only 0600. One writer per run directory: a second
``ml2bench run`` into the same folder is refused while the first holds its lock, and a folder
holding another run is refused unless the caller says ``force`` (:func:`claim_output`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ml2bench.core.stop import STATUSES, check_stop

HISTORY_COLUMNS = {
    "problem": "registered problem name",
    "method": "registered method name",
    "seed": "run seed",
    "config_hash": "hash of the run's resolved config (as in the summary: binds the history to its run)",
    "epoch": "passes over the training data drawn by the sampler so far",
    "iteration": "method steps so far",
    "grad_evals": "gradient/function evaluations in units of one full-batch evaluation on any level",
    "work_units": "evaluations weighted by their level's FLOP ratio to the finest level (serial: every evaluation)",
    "work_units_parallel": "work units on the critical path of a parallel execution: the additive Schwarz "
    "local phase counted once per iteration (its slowest subdomain); equal to work_units for every other method",
    "work_units_resolution": "work units between this point and the first step end or method checkpoint after "
    "the previous point: the iterate evaluated here was reached at most this much earlier (0: exactly here)",
    "train_time_s": "training wall time so far (evaluations of the test metric excluded)",
    "energy_cpu_j": "CPU package energy so far from RAPL (NaN: no counter)",
    "energy_dram_j": "DRAM energy so far from RAPL (NaN: no counter)",
    "energy_gpu_j": "GPU energy so far from NVML (NaN: no counter)",
    "energy_j": "sum of the available energy counters (NaN: none)",
    "train_loss": "loss on the whole training set at this point",
    "step_loss": "loss the method saw on its last batch",
    "val_loss": "loss on the validation split (classification: held out of the training data; NaN: none)",
    "val_metric": "validation metric, what targets and choices use for classification (NaN: no validation split)",
    "test_loss": "loss on the test set (reported, never used to choose)",
    "test_metric": "test metric (accuracy for classification, relative L2 error for PINNs; reported, never "
    "used to choose)",
}
#: what a run's two files must agree on with each other and with the job that owns the folder
IDENTITY = ("problem", "method", "seed", "config_hash")
RUN_FILES = ("history.parquet", "summary.parquet")

# The summary table's columns in the order the runner writes them (tests/test_records.py checks the
# order against a real run; docs/records.md is generated from this by tools/records_doc.py).
SUMMARY_COLUMNS = {
    "problem": "registered problem name",
    "method": "registered method name",
    "seed": "run seed (data, initialisation and batch-order seeds are derived from it)",
    "status": "ok (a stated convergence criterion holds), stopped (the method could not go on without "
    "converging), budget_exhausted, target_reached (stopped at its target), diverged (loss NaN/inf or exploded) "
    "or failed (an exception)",
    "stop_reason": "why the run ended: the method's criterion or reason (e.g. grad_tol, roundoff, stalled), "
    "budget:<key> for the first budget reached, target, no_evaluation, diverged or failed",
    "error": "the exception of a failed run ('' otherwise)",
    "metric_name": "name of the test metric (accuracy, rel_l2)",
    "metric_higher_is_better": "true when a larger test metric is better (accuracy)",
    "selection_quantity": "history column every choice is made on (targets, best grid point): val_metric "
    "for classification, train_loss for problems without a validation split (PINNs); never a test column",
    "final_train_loss": "train_loss at the last evaluation point",
    "final_val_loss": "val_loss at the last evaluation point (NaN: no validation split)",
    "final_val_metric": "val_metric at the last evaluation point (NaN: no validation split)",
    "final_test_loss": "test_loss at the last evaluation point",
    "final_test_metric": "test_metric at the last evaluation point (reported beside the validation metric)",
    "best_train_loss": "lowest train_loss over the evaluation points",
    "best_val_metric": "best val_metric over the evaluation points (the target rule's input)",
    "best_test_metric": "best test_metric over the evaluation points (by metric_higher_is_better; reported only)",
    "iterations": "method steps taken",
    "epochs": "passes over the training data drawn by the sampler",
    "grad_evals": "total evaluations in units of one full-batch evaluation (as in the history); never above a "
    "grad_evals budget (the work counter refuses the evaluation that would exceed it)",
    "work_units": "total evaluations weighted by their level's FLOP ratio (as in the history), serial; never above "
    "a work_units budget",
    "work_units_parallel": "total work units on the critical path (as in the history: additive Schwarz's local "
    "phase once per iteration; equal to work_units for every other method)",
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
    "final_val_loss",
    "final_val_metric",
    "final_test_loss",
    "final_test_metric",
    "best_train_loss",
    "best_val_metric",
    "best_test_metric",
    "iterations",
    "epochs",
    "grad_evals",
    "work_units",
    "work_units_parallel",
    "train_time_s",
    "wall_time_s",
    "energy_j",
    "levels",
    "batch_size",
)

SUMMARY_STATUS = tuple(STATUSES)  # ok, stopped, budget_exhausted, target_reached, diverged, failed
FINISHED = ("ok", "stopped", "diverged", "budget_exhausted", "target_reached")
# why a run ended (summary column ``stop_reason``): one of ml2bench.core.stop.StopReason, which
# also fixes the status it implies (``ok`` only for a convergence criterion); checked by write_run
#: the columns that identify one run of a sweep (aggregated tables, claims, grid_cycles.csv)
RUN_KEYS = ["problem_id", "method", "point", "seed"]
#: history column -> its column in the time-to-target table (results/tables/time_to_target.csv)
TIME_TO_TARGET_COLUMNS = {
    "epoch": "epochs_to_target",
    "grad_evals": "grad_evals_to_target",
    "work_units": "work_units_to_target",
    "work_units_parallel": "work_units_parallel_to_target",
    "train_time_s": "time_to_target_s",
    "energy_j": "energy_to_target_j",
}
#: Snakemake benchmark column -> its column in the aggregated summary
BENCH_COLUMNS = {"s": "bench_s", "max_rss": "bench_max_rss_mb", "cpu_time": "bench_cpu_time_s"}


LOCK_NAME = ".ml2bench.lock"
COMMIT_NAME = ".commit"  # a committed pair not yet moved into place (see the module docstring)
STAGING_PREFIX = ".staging-"  # a pair being written; never trusted, removed by recover()
#: files that mark a folder as aggregated tables (ml2bench.analysis.aggregate), never a run folder
TABLES_MARKERS = ("targets.json", "summary.csv", "history.csv", "comparison.csv", "time_to_target.csv")


class OutputError(OSError):
    """The output location cannot take a run's records (not a folder, not writable, in use,
    holding another run or aggregated tables)."""


class RecordsError(OSError):
    """Writing a run's records failed; the message says what the folder holds now."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_path(path: str | Path) -> None:
    """Flush a file's (or a folder's entries') data to the device: a rename is durable only
    after the file it renames and then the folder holding it are."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_table(df: pd.DataFrame, path: Path, csv: bool = False) -> None:
    """``df`` to ``path`` (CSV or parquet), flushed to the device."""
    if csv:
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
    _fsync_path(path)


def write_parquet_atomic(df: pd.DataFrame, path: str | Path) -> None:
    """Write ``df`` to ``path`` via a temporary file in the same directory, fsync and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600; a result file is as readable as any other
    finally:
        os.close(fd)
    try:
        _write_table(df, Path(tmp), csv=path.suffix == ".csv")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def recover(out_dir: str | Path) -> bool:
    """Finish what an interrupted :func:`commit` left in ``out_dir``; True when anything changed.

    A complete ``.commit/`` (the commit point was reached) is rolled forward: its files are moved
    into place. ``.staging-*`` folders (never committed) are removed. Call it only while holding
    the folder's lock (:func:`run_lock`), as a writer does, or when no writer can be running.
    """
    out = Path(out_dir)
    changed = False
    committed = out / COMMIT_NAME
    if committed.is_dir():
        for path in sorted(committed.iterdir()):  # what a crash left: any subset of the unit
            os.replace(path, out / path.name)
        _fsync_path(out)
        committed.rmdir()
        changed = True
    for staging in out.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(staging, ignore_errors=True)
        changed = True
    return changed


def _holds_run(out: Path) -> bool:
    return any((out / name).exists() for name in RUN_FILES)


def commit(tables: Mapping[str, pd.DataFrame], out_dir: str | Path) -> Path:
    """Write ``{file name: table}`` into ``out_dir`` as one unit (see the module docstring).

    Raises :class:`RecordsError` saying truthfully what ``out_dir`` holds afterwards: the previous
    files unchanged (failure before the commit point), or the new ones committed but not yet in
    place (failure after it; :func:`recover` finishes the move).
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        recover(out)
    except OSError as err:
        raise RecordsError(err.errno, f"{err.strerror or err}; nothing new was written to it", str(out)) from err
    before = "the previous records in it are unchanged" if _holds_run(out) else "nothing was written to it"
    try:
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
    except OSError as err:
        raise RecordsError(err.errno, f"{err.strerror or err}; {before}", str(out)) from err
    try:
        os.chmod(staging, 0o777 & ~_umask())
        for name, df in tables.items():
            _write_table(df, staging / name, csv=name.endswith(".csv"))
        _fsync_path(staging)
        os.rename(staging, out / COMMIT_NAME)  # the commit point
    except BaseException as err:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(err, OSError):
            raise RecordsError(err.errno, f"{err.strerror or err}; {before}", str(out)) from err
        raise
    try:
        _fsync_path(out)
        recover(out)
    except OSError as err:
        raise RecordsError(
            err.errno,
            f"{err.strerror or err}; the new records are complete in {COMMIT_NAME}/ but not yet in place: "
            f"the next 'ml2bench run' into this folder or 'snakemake' moves them",
            str(out),
        ) from err
    return out


def read_identity(run_dir: str | Path) -> dict[str, Any]:
    """problem, method, seed and config_hash recorded in the run's summary."""
    import pyarrow.parquet as pq

    row = pq.read_table(Path(run_dir) / "summary.parquet", columns=list(IDENTITY)).to_pylist()[0]
    return {k: row[k] for k in IDENTITY}


def describe(identity: Mapping[str, Any]) -> str:
    """``problem=…, method=…, seed=…, config_hash=…`` (the keys present)."""
    return ", ".join(f"{k}={identity.get(k)}" for k in IDENTITY if k in identity)


def _check_destination(out: Path, identity: Mapping[str, Any] | None, force: bool) -> None:
    """Refuse aggregated tables always, and a folder holding another run unless ``force``."""
    markers = [m for m in TABLES_MARKERS if (out / m).exists()]
    if not markers and (out / "summary.parquet").is_file():
        import pyarrow.parquet as pq

        with contextlib.suppress(Exception):  # unreadable: judged below
            if "problem_id" in pq.read_schema(out / "summary.parquet").names:
                markers = ["summary.parquet with a problem_id column"]
    if markers:
        raise OutputError(
            f"--out {str(out)!r} holds aggregated tables ({', '.join(markers)}), which a run's records "
            f"would replace; allowed: a run folder such as results/runs/demo"
        )
    if force or identity is None or not (out / "summary.parquet").exists():
        return
    try:
        found = read_identity(out)
    except Exception as err:  # any unreadable file: refuse, do not guess
        raise OutputError(
            f"--out {str(out)!r} holds an unreadable summary.parquet ({' '.join(str(err).split())[:120]}); "
            f"allowed: another folder, or --force to replace it"
        ) from None
    if any(found[k] != identity[k] for k in IDENTITY if k in identity):
        raise OutputError(
            f"--out {str(out)!r} holds another run ({describe(found)}); this run is ({describe(identity)}); "
            f"allowed: another folder, or --force to replace it"
        )


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
def claim_output(out_dir: str | Path, identity: Mapping[str, Any] | None = None, force: bool = False) -> Iterator[Path]:
    """:func:`check_output_dir` + :func:`run_lock` + :func:`recover`, then refuse a folder of
    aggregated tables, or one holding a run other than ``identity`` (unless ``force``); folders
    created here are removed again when the body raises before writing anything (bad input
    leaves no trace)."""
    out = Path(out_dir)
    created = []
    probe = out
    while str(probe) not in ("", ".", "/") and not probe.exists():
        created.append(probe)
        probe = probe.parent
    try:
        check_output_dir(out_dir)
        with run_lock(out):
            recover(out)
            _check_destination(out, identity, force)
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
    """Commit a run's two tables into ``out_dir`` (:func:`commit`) and return the folder used.

    A failed run whose ``out_dir`` already holds a finished run goes to ``out_dir/failed/``
    instead, so nothing finished is lost.
    """
    out = Path(out_dir)
    for status, reason in zip(summary["status"], summary["stop_reason"]):
        check_stop(status, reason)  # a record with an unknown or inconsistent stop reason is a bug
    if out.is_dir():
        recover(out)  # an interrupted earlier commit decides what "finished" means here
    if summary["status"].iloc[0] == "failed" and finished_run_exists(out):
        out = out / "failed"
    return commit({"history.parquet": history, "summary.parquet": summary}, out)
