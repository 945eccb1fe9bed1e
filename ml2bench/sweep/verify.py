"""Is every run of a sweep there, readable and the run it claims to be?

Three things go wrong with result directories on shared file systems: a run is **missing**
(deleted, never run), a file is **corrupt** (truncated copy, full disk, garbage), or a run's
files sit in **another run's directory** (copied by hand). Each is found without trusting the
directory name: parquet footers, schemas and row counts are read from the file's metadata (cheap,
no data pages), and the identity stored in the summary — problem, method, seed and config hash —
is compared with the job that owns the directory.

    ml2bench verify results                                   # the runs that are there
    ml2bench verify results --configfile workflow/config/ci.yaml  # ... and the ones that should be
    ml2bench verify --configfile my_sweep.yaml                # only check the config (YAML errors with line)

Exit status: 0 all runs complete and consistent, 1 problems found (listed one per line),
2 bad input. The Snakemake workflow moves corrupt files aside before it builds its DAG (see
:func:`quarantine`), so the next ``snakemake`` re-runs those runs and re-aggregates.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from ml2bench.core.params import ConfigError
from ml2bench.core.records import HISTORY_COLUMNS

RUN_FILES = ("history.parquet", "summary.parquet")
IDENTITY = ("problem", "method", "seed", "config_hash")
REQUIRED_COLUMNS = {
    "history.parquet": tuple(HISTORY_COLUMNS),
    "summary.parquet": ("problem", "method", "seed", "status", "config_hash"),
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


def read_identity(run_dir: str | Path) -> dict[str, Any]:
    """problem, method, seed and config_hash recorded in the run's summary."""
    row = pq.read_table(Path(run_dir) / "summary.parquet", columns=list(IDENTITY)).to_pylist()[0]
    return {k: row[k] for k in IDENTITY}


def _fmt(identity: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={identity.get(k)}" for k in IDENTITY if k in identity)


def check_run(run_dir: str | Path, expected: Mapping[str, Any] | None = None) -> list[Finding]:
    """Problems of one run directory; ``expected`` is the owning job's identity (any subset of
    problem, method, seed, config_hash; without it the directory's method and seed are used)."""
    d = Path(run_dir)
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
    found = read_identity(d)
    differ = {k for k, v in expected.items() if k in found and found[k] != v}
    if differ:
        findings.append(
            Finding(
                "mismatch",
                str(d / "summary.parquet"),
                f"holds the run ({_fmt(found)}) but this directory belongs to ({_fmt(expected)}); {WHAT_TO_DO}",
            )
        )
        return findings
    hist = pq.read_table(d / "history.parquet", columns=["problem", "method", "seed"]).to_pandas()
    for col in ("problem", "method", "seed"):
        other = set(hist[col].unique()) - {found[col]}
        if other:
            findings.append(
                Finding(
                    "mismatch",
                    str(d / "history.parquet"),
                    f"{col} {sorted(map(str, other))} differs from the summary's {found[col]!r}; {WHAT_TO_DO}",
                )
            )
            break
    return findings


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


def verify(results: str | Path, configfile: str | Path | None = None) -> tuple[int, list[Finding]]:
    """(number of runs checked, findings) for a results folder (or runs root)."""
    results = Path(results)
    if not results.is_dir():
        raise ConfigError(
            f"results folder {str(results)!r} not found; allowed: a folder holding runs/ (e.g. results) or a runs root"
        )
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
        help="results folder holding runs/ (or a runs root); without it only --configfile is checked",
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
    problems = [f for f in findings if f.kind != "extra"]
    print(
        f"{n} runs checked: {len(problems)} problem(s)"
        + (f", {len(findings) - len(problems)} extra run(s)" if len(findings) > len(problems) else "")
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
