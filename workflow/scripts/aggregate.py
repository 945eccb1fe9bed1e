"""Rule ``aggregate`` (workflow/rules/analysis.smk): every run folder -> results/tables.

The run folders come as a parameter, not on a command line: a paper sweep has more run
directories than fit in one argument list."""

from pathlib import Path

from ml2bench.analysis.aggregate import aggregate, write_tables

params = snakemake.params
bench = {d: f"results/benchmarks/runs/{d[len('results/runs/') :]}.tsv" for d in params.run_dirs}
history, summary = aggregate(params.run_dirs, bench, params.identities)
write_tables(history, summary, "results/tables", params.targets)
log = Path(snakemake.log[0])
log.parent.mkdir(parents=True, exist_ok=True)
log.write_text(f"{len(summary)} runs, {len(history)} evaluation points\n")
