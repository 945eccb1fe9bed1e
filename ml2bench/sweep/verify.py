"""Is every run of a sweep there, readable, one consistent pair, and the run it claims to be?

Things go wrong with result directories on shared file systems: a run is **missing** (deleted,
never run), a file is **corrupt** (truncated copy, full disk, garbage), a run's files sit in
**another run's directory** (copied by hand), or the two files of a folder come from **two
different runs** (a history swapped between hyper-parameter points). Each is found without
trusting the directory name: parquet footers, schemas and row counts are read from the file's
metadata, the identity stored in both files — problem, method, seed and config hash — is
compared with the job that owns the directory and between the two files, and the summary's
final values must be the history's last row.

    ml2bench verify results                                   # the runs that are there
    ml2bench verify results/runs/mlp/sgd/default/seed0       # one run folder
    ml2bench verify results --configfile workflow/config/ci.yaml  # ... and the ones that should be
    ml2bench verify --configfile my_sweep.yaml                # only check the config (YAML errors with line)

Exit status: 0 all runs complete and consistent, 1 problems found (listed one per line),
2 bad input. The Snakemake workflow finishes interrupted commits and moves corrupt files aside
before it builds its DAG (see :func:`repair`), so the next ``snakemake`` re-runs those runs and
re-aggregates; a dry run (``snakemake -n``) only reports them.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ml2bench.core import records
from ml2bench.core.params import ConfigError
from ml2bench.core.records import HISTORY_COLUMNS, IDENTITY, RUN_FILES

#: summary column -> history column holding the same value in the history's last row
FINAL_VALUES = {
    "final_train_loss": "train_loss",
    "final_test_loss": "test_loss",
    "final_test_metric": "test_metric",
    "epochs": "epoch",
}
REQUIRED_COLUMNS = {
    "history.parquet": tuple(HISTORY_COLUMNS),
    "summary.parquet": (*IDENTITY, "status", *FINAL_VALUES),
}
WHAT_TO_DO = "delete the run directory and run snakemake again (or 'ml2bench run' for that run)"


class RunIntegrityError(ValueError):
    """A run directory is missing a file, holds a corrupt file or another run's files."""


@dataclass(frozen=True)
class Finding:
    """One problem with one run: ``kind`` is missing, corrupt or mismatch."""

    kind: str
    path: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.path}: {self.detail}"


def check_file(path: str | Path) -> str | None:
    """Why ``path`` (a run's history or summary parquet) is unusable, or None when it is fine.

    Reads only the footer: magic bytes, schema and row count.
    """
    path = Path(path)
    try:
        meta = pq.read_metadata(path)
    except FileNotFoundError:
        return "missing"
    except Exception as err:  # ArrowInvalid, OSError: truncated, empty or not parquet at all
        return f"not a readable parquet file ({' '.join(str(err).split())[:160]})"
    names = set(meta.schema.names)
    lacking = [c for c in REQUIRED_COLUMNS.get(path.name, ()) if c not in names]
    if lacking:
        return f"lacks the column(s) {', '.join(lacking)}"
    if path.name == "summary.parquet" and meta.num_rows != 1:
        return f"has {meta.num_rows} rows; a run summary has exactly 1"
    if path.name == "history.parquet" and meta.num_rows < 1:
        return "has no rows; a finished run has at least its initial evaluation point"
    return None


def corrupt_files(run_dirs: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """(file, why) for every existing run file that fails :func:`check_file` (missing ones are fine)."""
    bad = []
    for d in run_dirs:
        for name in RUN_FILES:
            f = Path(d) / name
            if f.exists():
                why = check_file(f)
                if why is not None:
                    bad.append((f, why))
    return bad


def quarantine(path: str | Path) -> Path:
    """Move a corrupt file to ``<dir>/corrupt/<name>.<UTC time>`` (kept for inspection, out of the way)."""
    path = Path(path)
    dest = path.parent / "corrupt" / f"{path.name}.{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    dest.parent.mkdir(exist_ok=True)
    path.replace(dest)
    return dest


def repair(run_dirs: Iterable[str | Path], dry_run: bool = False) -> list[str]:
    """What the workflow does before it builds its DAG, one line per action: finish interrupted
    commits (:func:`ml2bench.core.records.recover`, skipped while a writer holds the folder's
    lock) and move corrupt files to ``corrupt/`` so that their runs are redone. With ``dry_run``
    nothing on disk changes and the lines say what a real run would do."""
    lines = []
    for d in map(Path, run_dirs):
        if (d / records.COMMIT_NAME).is_dir() or any(d.glob(f"{records.STAGING_PREFIX}*")):
            if dry_run:
                lines.append(f"{d}: an interrupted commit; a real run completes it")
            else:
                try:
                    with records.run_lock(d):
                        records.recover(d)
                    lines.append(f"{d}: an interrupted commit was completed")
                except records.OutputError:
                    lines.append(f"{d}: in use by a running ml2bench run; left alone")
    for path, why in corrupt_files(run_dirs):
        if dry_run:
            lines.append(f"{path} {why}; a real run moves it to corrupt/ and redoes the run")
        else:
            lines.append(f"{path} {why}; moved to {quarantine(path)}; the run is redone")
    return lines


def _differs(a: Any, b: Any) -> bool:
    """Values differ (NaN equals NaN: a run that ended on NaN records it in both files)."""
    nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return not nan and a != b


def _pair_findings(d: Path, found: Mapping[str, Any]) -> list[Finding]:
    """The history must carry the summary's identity and end on the summary's final values."""
    summary = pq.read_table(d / "summary.parquet", columns=list(FINAL_VALUES)).to_pylist()[0]
    hist = pq.read_table(d / "history.parquet", columns=[*IDENTITY, *FINAL_VALUES.values()]).to_pandas()
    for col in IDENTITY:
        other = set(hist[col].unique()) - {found[col]}
        if other:
            return [
                Finding(
                    "mismatch",
                    str(d / "history.parquet"),
                    f"{col} {sorted(map(str, other))} differs from the summary's {found[col]!r}: the two files "
                    f"are from different runs; {WHAT_TO_DO}",
                )
            ]
    last = hist.iloc[-1]
    for s_col, h_col in FINAL_VALUES.items():
        if _differs(float(summary[s_col]), float(last[h_col])):
            return [
                Finding(
                    "mismatch",
                    str(d / "history.parquet"),
                    f"its last row has {h_col}={float(last[h_col])!r} but the summary's {s_col} is "
                    f"{float(summary[s_col])!r}: the two files are from different runs; {WHAT_TO_DO}",
                )
            ]
    return []


def check_run(run_dir: str | Path, expected: Mapping[str, Any] | None = None) -> list[Finding]:
    """Problems of one run directory; ``expected`` is the owning job's identity (any subset of
    problem, method, seed, config_hash; without it the directory's method and seed are used)."""
    d = Path(run_dir)
    if (d / records.COMMIT_NAME).is_dir():
        return [
            Finding(
                "interrupted",
                str(d / records.COMMIT_NAME),
                "a committed pair not yet moved into place; the next snakemake or 'ml2bench run' into this "
                "folder completes it",
            )
        ]
    findings = []
    for name in RUN_FILES:
        why = check_file(d / name)
        if why == "missing":
            findings.append(Finding("missing", str(d / name), "the run has not finished; re-run it"))
        elif why is not None:
            findings.append(Finding("corrupt", str(d / name), f"{why}; {WHAT_TO_DO}"))
    if findings:
        return findings
    if expected is None:  # a sweep's layout <problem_id>/<method>/<point>/seed<k> says method and seed
        sweep_layout = d.name.startswith("seed") and d.name[4:].isdigit()
        expected = {"method": d.parent.parent.name, "seed": int(d.name[4:])} if sweep_layout else {}
    found = records.read_identity(d)
    differ = {k for k, v in expected.items() if k in found and found[k] != v}
    if differ:
        return [
            Finding(
                "mismatch",
                str(d / "summary.parquet"),
                f"holds the run ({records.describe(found)}) but this directory belongs to "
                f"({records.describe(expected)}); {WHAT_TO_DO}",
            )
        ]
    return _pair_findings(d, found)


def require_intact(run_dir: str | Path, expected: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`RunIntegrityError` with every finding of :func:`check_run` (aggregation uses it)."""
    findings = check_run(run_dir, expected)
    if findings:
        raise RunIntegrityError("; ".join(map(str, findings)))


# --- the sweep's expected runs ----------------------------------------------------------
def expected_runs(configfile: str | Path) -> dict[str, dict[str, Any]]:
    """{run directory relative to the results' parent: identity} of every job of a sweep config."""
    from ml2bench.sweep import jobs as sweep

    try:
        jobs = sweep.load_jobs(configfile)
    except sweep.SweepError as err:
        raise ConfigError(str(err)) from None
    return {job.outdir: job.identity() for job in jobs}


def runs_root(results: Path) -> Path:
    """``results/runs`` when given ``results``; the folder itself when it is a runs root."""
    return results / "runs" if (results / "runs").is_dir() else results


def is_run_dir(path: Path) -> bool:
    """A folder holding a run's files (or a commit of them) rather than a tree of runs."""
    return any((path / name).exists() for name in (*RUN_FILES, records.COMMIT_NAME))


def _check_one(run_dir: Path, configfile: str | Path | None) -> list[Finding]:
    """One run folder; with a config, against the job whose folder ends like this one."""
    if configfile is None:
        return check_run(run_dir)
    tail = run_dir.resolve().parts[-4:]
    owners = [ident for outdir, ident in expected_runs(configfile).items() if Path(outdir).parts[-4:] == tail]
    if not owners:
        return [Finding("extra", str(run_dir), "not a run of this sweep config (ignored by aggregation)")]
    return check_run(run_dir, owners[0])


def verify(results: str | Path, configfile: str | Path | None = None) -> tuple[int, list[Finding]]:
    """(number of runs checked, findings) for a results folder, a runs root or one run folder."""
    results = Path(results)
    if not results.is_dir():
        raise ConfigError(
            f"results folder {str(results)!r} not found; allowed: a folder holding runs/ (e.g. results) or a runs root"
        )
    if is_run_dir(results):
        return 1, _check_one(results, configfile)
    root = runs_root(results)
    present = sorted({p.parent for name in RUN_FILES for p in root.glob(f"*/*/*/seed*/{name}")})
    if configfile is None:
        return len(present), [f for d in present for f in check_run(d)]
    expected = expected_runs(configfile)
    # job.outdir is 'results/runs/<pid>/<method>/<point>/seed<k>'; map it onto this root
    by_dir = {root / Path(*Path(k).parts[2:]): v for k, v in expected.items()}
    findings = [f for d, ident in sorted(by_dir.items()) for f in check_run(d, ident)]
    extra = [d for d in present if d not in by_dir]
    findings += [Finding("extra", str(d), "not a run of this sweep config (ignored by aggregation)") for d in extra]
    return len(by_dir), findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ml2bench verify",
        description="List missing, corrupt and mismatched runs of a results folder (exit 1 when any).",
    )
    parser.add_argument(
        "results",
        type=Path,
        nargs="?",
        help="results folder holding runs/, a runs root or one run folder; without it only --configfile is checked",
    )
    parser.add_argument(
        "--configfile", type=Path, help="sweep config (as given to snakemake): also list runs that are missing"
    )
    args = parser.parse_args(argv)
    if args.results is None and args.configfile is None:
        parser.error("give RESULTS, --configfile or both")
    try:
        if args.results is None:  # a config linter: YAML (file:line), schema, registries, every run
            print(f"{args.configfile}: {len(expected_runs(args.configfile))} runs, all valid")
            return 0
        n, findings = verify(args.results, args.configfile)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for f in findings:
        print(f)
    if n == 0:  # nothing verified is not "all fine"
        print(f"no runs found in {args.results} (expected runs/<problem>/<method>/<point>/seed<k>/ or a run folder)")
        return 1
    problems = [f for f in findings if f.kind != "extra"]
    print(
        f"{n} runs checked: {len(problems)} problem(s)"
        + (f", {len(findings) - len(problems)} extra run(s)" if len(findings) > len(problems) else "")
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
