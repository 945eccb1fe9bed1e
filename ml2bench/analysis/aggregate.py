"""Collect the per-run tables of a sweep into two tidy tables (plus CSV copies).

Input: run directories ``results/runs/<problem_id>/<method>/<point>/seed<k>/`` holding
``history.parquet`` and ``summary.parquet`` (written by ``ml2bench run``). Output, into ``--out``:
``history.parquet``/``.csv`` (all evaluation points) and ``summary.parquet``/``.csv`` (one row per
run). Both gain the columns ``problem_id`` (the sweep entry: one "problem" of the comparison) and
``point`` (hyper-parameter point); the summary also gains the job's Snakemake benchmark record
(``bench_s``, ``bench_max_rss_mb``, ``bench_cpu_time_s``) where one exists.

    python -m ml2bench.analysis.aggregate --runs-root results/runs --out results/tables
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ml2bench.core.records import BENCH_COLUMNS, write_parquet_atomic
from ml2bench.sweep.verify import require_intact

EXTRA_COLUMNS = {
    "problem_id": "sweep entry id (directory under results/runs; one problem of the comparison)",
    "point": "hyper-parameter point (directory name, 'default' for the method's defaults)",
}


def run_key(run_dir: str | Path) -> dict[str, object]:
    """problem_id, method, point and seed from ``.../<problem_id>/<method>/<point>/seed<k>``."""
    parts = Path(run_dir).parts
    if len(parts) < 4 or not parts[-1].startswith("seed"):
        raise ValueError(f"{str(run_dir)!r} is not a run directory <problem_id>/<method>/<point>/seed<k>")
    return {"problem_id": parts[-4], "method": parts[-3], "point": parts[-2], "seed": int(parts[-1][4:])}


def find_runs(root: str | Path) -> list[Path]:
    """Run directories under ``root`` that hold a summary (``failed/`` sub-directories excluded)."""
    return sorted(p.parent for p in Path(root).glob("*/*/*/seed*/summary.parquet"))


def read_benchmark(path: str | Path | None) -> dict[str, float]:
    """Snakemake ``benchmark:`` TSV (one or more repeats; the last one counts) as bench_* columns."""
    if path is None or not Path(path).is_file():
        return {}
    try:
        bench = pd.read_csv(path, sep="\t")
    except Exception:
        return {}
    if not len(bench):
        return {}
    row = bench.iloc[-1]
    return {
        out: pd.to_numeric(row.get(col), errors="coerce") for col, out in BENCH_COLUMNS.items() if col in bench.columns
    }


def aggregate(
    run_dirs: Iterable[str | Path],
    benchmarks: dict[str, str] | None = None,
    identities: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history, summary) of all ``run_dirs``; ``benchmarks`` maps a run dir to its TSV.

    Every directory is checked first (:func:`ml2bench.sweep.verify.require_intact`): readable files,
    and the identity the summary records — problem, method, seed, config hash — equal to
    ``identities[dir]`` (the owning job's, from the sweep) or, without it, to the directory's
    method and seed. A mismatch raises an error naming both, never a silently relabelled run.
    """
    histories, summaries = [], []
    benchmarks = {str(Path(k)): v for k, v in (benchmarks or {}).items()}
    identities = {str(Path(k)): v for k, v in (identities or {}).items()}
    for d in run_dirs:
        d = Path(d)
        key = run_key(d)
        require_intact(d, identities.get(str(d)))
        h = pd.read_parquet(d / "history.parquet")
        s = pd.read_parquet(d / "summary.parquet")
        for frame in (h, s):
            frame.insert(0, "problem_id", key["problem_id"])
            frame.insert(int(frame.columns.get_loc("method")) + 1, "point", key["point"])
        for col, value in read_benchmark(benchmarks.get(str(d))).items():
            s[col] = value
        histories.append(h)
        summaries.append(s)
    if not summaries:
        raise ValueError("no runs to aggregate")
    history = pd.concat(histories, ignore_index=True)
    summary = pd.concat(summaries, ignore_index=True)
    for col in BENCH_COLUMNS.values():
        if col not in summary:
            summary[col] = float("nan")
    keys = ["problem_id", "method", "point", "seed"]
    dup = summary.duplicated(keys)
    if dup.any():
        raise ValueError(f"duplicate runs: {summary.loc[dup, keys].to_dict('records')}")
    summary = summary.sort_values(keys, kind="stable").reset_index(drop=True)
    history = history.sort_values(keys + ["work_units", "iteration"], kind="stable").reset_index(drop=True)
    return history, summary


def write_tables(
    history: pd.DataFrame, summary: pd.DataFrame, out: str | Path, targets: dict | None = None
) -> dict[str, Path]:
    out = Path(out)
    paths = {name: out / name for name in ("history.parquet", "summary.parquet", "history.csv", "summary.csv")}
    write_parquet_atomic(history, paths["history.parquet"])
    write_parquet_atomic(summary, paths["summary.parquet"])
    write_parquet_atomic(history, paths["history.csv"])
    write_parquet_atomic(summary, paths["summary.csv"])
    if targets is not None:
        paths["targets.json"] = out / "targets.json"
        paths["targets.json"].write_text(json.dumps(targets, indent=2, sort_keys=True) + "\n")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ml2bench.analysis.aggregate",
        description="Aggregate run directories (results/runs/<problem_id>/<method>/<point>/seed<k>) "
        "into history/summary tables (parquet + CSV).",
    )
    parser.add_argument("runs", nargs="*", type=Path, help="run directories (default: all under --runs-root)")
    parser.add_argument("--runs-root", type=Path, default=Path("results/runs"), help="default: results/runs")
    parser.add_argument(
        "--benchmarks-root",
        type=Path,
        default=Path("results/benchmarks/runs"),
        help="Snakemake benchmark TSVs <root>/<problem_id>/<method>/<point>/seed<k>.tsv",
    )
    parser.add_argument(
        "--targets", type=Path, help="JSON {problem_id: {quantity, value, direction}} copied to <out>/targets.json"
    )
    parser.add_argument("--out", type=Path, default=Path("results/tables"), help="default: results/tables")
    args = parser.parse_args(argv)
    runs = args.runs or find_runs(args.runs_root)
    bench = {}
    for d in runs:
        k = run_key(d)
        bench[str(d)] = str(
            args.benchmarks_root / k["problem_id"] / str(k["method"]) / str(k["point"]) / f"seed{k['seed']}.tsv"
        )
    try:
        history, summary = aggregate(runs, bench)
        targets = json.loads(args.targets.read_text()) if args.targets else None
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_tables(history, summary, args.out, targets)
    print(f"{len(summary)} runs, {len(history)} evaluation points -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
