# One training run per job. `ml2bench run` commits history.parquet and summary.parquet as one unit
# into the run directory (ml2bench/core/records.py). `--force`: the folder is this job's output
# (Snakemake removes a job's outputs before it runs), so records of an earlier config of the same
# job are replaced, not refused. Exit 0: finished (ok, budget_exhausted, target_reached or *diverged* — a result);
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
    conda:
        CONDA_ENV
    threads: lambda wc: job_of(wc).run.get("threads") or 1
    resources:
        gpu=lambda wc: 1 if job_of(wc).device == "cuda" else 0,
        mem_mb=2000,
        runtime=30,
    params:
        args=lambda wc: job_of(wc).cli_args(),
        outdir=lambda wc: job_of(wc).outdir,
        ml2bench=ML2BENCH,
    shell:
        "{params.ml2bench} run {params.args} --out {params.outdir} --force --quiet > {log} 2>&1"


# Start-up once per sweep, not once per run (issue 14): Snakemake runs every job's shell command as
# a new process and ignores `group:` for local execution, so for local runs the workflow starts an
# ml2bench fork server (ml2bench/sweep/forkserver.py) before the first job; each job's `ml2bench run`
# then hands its arguments to the server, which forks a child with torch, pandas and ml2bench
# already imported. Jobs, outputs, logs, benchmarks and resumability are unchanged (one job = one
# run = one set of outputs). Off with `fork_server: false` at the top level of the config
# (or `--config fork_server=false`); never used with a cluster executor (jobs run elsewhere).
onstart:
    if _use_fork_server():
        from ml2bench.sweep import forkserver as _forkserver

        _server = _forkserver.launch_for_workflow()  # None: plain processes (it says so)
        if _server is not None:
            _FORK_SERVER["server"] = _server
            os.environ[_forkserver.ENV] = _server.address
            print(f"ml2bench fork server: {_server.address}")


onsuccess:
    _stop_fork_server()


onerror:
    _stop_fork_server()
