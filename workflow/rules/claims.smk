# Claims verdicts (ml2bench/analysis/claims.py; the rule: docs/statistics.md): only when the config
# has a `claims:` list (workflow/config/claims.yaml). Adds results/tables/claims.{csv,md}; report_md
# then gets a "Claims" section. Every claim is checked here, at parse time, against the sweep's
# jobs, `claims_grid` and `claims_speedup`: a misspelt metric, problem, method or point stops the workflow before any job.
from ml2bench.sweep.claimspec import check_config as _check_claims

try:
    CLAIMS = _check_claims(config, JOB_LIST)
except ValueError as err:  # ConfigError: one line naming the bad value and what is allowed
    raise WorkflowError(str(err)) from None
GRID_IDS = [g["id"] for g in config.get("claims_grid") or []]
SPEEDUP_IDS = [g["id"] for g in config.get("claims_speedup") or []]
# the speed-up rule holds a core per process (on a 2-core machine: all of them, so no job runs beside it)
SPEEDUP_THREADS = max([int(g.get("processes", 2)) for g in config.get("claims_speedup") or []], default=1)
CLAIMS_REFERENCE = config.get("claims_reference")  # tables of a longer run: the budget a "not tested" pair needs
CLAIMS_MD = ["results/tables/claims.md"] if CLAIMS else []


rule grid_cycles:
    output:
        "results/tables/grid_cycles.csv",
    log:
        "results/logs/grid_cycles.log",
    benchmark:
        "results/benchmarks/grid_cycles.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/grid_cycles.py"


# the speed-up of parallel Schwarz (ml2bench/sweep/speedup.py): a core per process; the idle cores it
# measures during each timed run (jobs beside it count as load) decide whether the claim is tested
rule speedup:
    output:
        "results/tables/speedup.csv",
    log:
        "results/logs/speedup.log",
    benchmark:
        "results/benchmarks/speedup.tsv"
    conda:
        CONDA_ENV
    threads: SPEEDUP_THREADS
    script:
        "../scripts/speedup.py"


rule claims:
    input:
        "results/tables/summary.parquet",
        "results/tables/time_to_target.csv",
        ["results/tables/grid_cycles.csv"] if GRID_IDS else [],
        ["results/tables/speedup.csv"] if SPEEDUP_IDS else [],
        [f"{CLAIMS_REFERENCE}/summary.parquet"] if CLAIMS_REFERENCE else [],
    output:
        csv="results/tables/claims.csv",
        md="results/tables/claims.md",
    log:
        "results/logs/claims.log",
    conda:
        CONDA_ENV
    params:
        claims=CLAIMS,  # checked at parse time (above)
        reference=CLAIMS_REFERENCE,
    script:
        "../scripts/claims.py"
