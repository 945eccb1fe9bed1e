# One training run per job. `ml2bench run` writes history.parquet then summary.parquet atomically
# into the run directory. Exit 0: finished (ok, budget_exhausted or *diverged* — a result);
# exit 1: failed — Snakemake marks the job failed and deletes its outputs, so no partial run is
# ever aggregated (a killed job's outputs are "incomplete"; re-run with --rerun-incomplete).
#
# threads: the job's torch threads, `--set threads=N` from the config's `run: threads` (default 1,
# sweep.RUN_DEFAULTS), so with threads 1 two jobs share two cores fairly and Snakemake never
# oversubscribes the cores it was given. GPU: a job whose run options say `device: cuda` declares `resources: gpu=1`
# (local: `snakemake --resources gpu=1` runs one job per GPU at a time; SLURM: the executor plugin
# requests one GPU for it).


rule train:
    output:
        history="results/runs/{problem}/{method}/{point}/seed{seed}/history.parquet",
        summary="results/runs/{problem}/{method}/{point}/seed{seed}/summary.parquet",
    log:
        "results/logs/runs/{problem}/{method}/{point}/seed{seed}.log",
    benchmark:
        "results/benchmarks/runs/{problem}/{method}/{point}/seed{seed}.tsv"
    params:
        args=lambda wc: job_of(wc).cli_args(),
        outdir=lambda wc: job_of(wc).outdir,
        ml2bench=ML2BENCH,
    threads: lambda wc: job_of(wc).run.get("threads") or 1
    resources:
        gpu=lambda wc: 1 if job_of(wc).device == "cuda" else 0,
        mem_mb=2000,
        runtime=30,
    shell:
        "{params.ml2bench} run {params.args} --out {params.outdir} --quiet > {log} 2>&1"
