"""Share of a sweep's job time that is not training: process start-up + set-up + evaluation.

    python workflow/scripts/overhead.py [results]      # default: results/

Job time per run is Snakemake's benchmark file (``results/benchmarks/runs/<run>.tsv``, column
``s``: wall seconds of the job's command); training time is the run's ``train_time_s`` (summary
table). overhead = 1 − Σ train / Σ job. Issue 14's goal for the default sweep: ≤ 20 %.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pandas as pd


def overhead(results: Path) -> dict[str, float]:
    job = train = 0.0
    runs = 0
    for tsv in sorted((results / "benchmarks" / "runs").rglob("*.tsv")):
        run_dir = results / "runs" / tsv.relative_to(results / "benchmarks" / "runs").with_suffix("")
        summary = run_dir / "summary.parquet"
        if not summary.is_file():
            continue
        with tsv.open() as fh:
            job += float(next(csv.DictReader(fh, delimiter="\t"))["s"])
        train += float(pd.read_parquet(summary, columns=["train_time_s"])["train_time_s"].sum())
        runs += 1
    if not runs:
        raise SystemExit(f"no finished runs with benchmark files under {results}")
    return {"runs": runs, "job_s": job, "train_s": train, "overhead": 1.0 - train / job}


def main(argv: list[str]) -> int:
    r = overhead(Path(argv[0] if argv else "results"))
    print(
        f"{r['runs']} runs: job time {r['job_s']:.1f} s, training {r['train_s']:.1f} s, "
        f"start-up + set-up + evaluation {r['job_s'] - r['train_s']:.1f} s = {100 * r['overhead']:.1f} % of job time"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
