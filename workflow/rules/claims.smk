# Claims verdicts (ml2bench/analysis/claims.py; the rule: docs/statistics.md): only when the config
# has a `claims:` list (workflow/config/claims.yaml). Adds results/tables/claims.{csv,md}; report_md
# then gets a "Claims" section. Every claim is checked here, at parse time, against the sweep's
# jobs and `claims_grid`: a misspelt metric, problem, method or point stops the workflow before any job.
from ml2bench.analysis.claims import check_config as _check_claims

try:
    CLAIMS = _check_claims(config, JOB_LIST)
except ValueError as err:  # ConfigError: one line naming the bad value and what is allowed
    raise WorkflowError(str(err)) from None
GRID_IDS = [g["id"] for g in config.get("claims_grid") or []]
CLAIMS_REFERENCE = config.get("claims_reference")  # tables of a longer run: the budget a "not tested" pair needs
CLAIMS_MD = ["results/tables/claims.md"] if CLAIMS else []


rule grid_cycles:
    output:
        "results/tables/grid_cycles.csv",
    log:
        "results/logs/grid_cycles.log",
    benchmark:
        "results/benchmarks/grid_cycles.tsv"
    run:
        from ml2bench.sweep.grid_cycles import write_grid_cycles as _write_grid_cycles

        _write_grid_cycles(config, output[0])
        Path(log[0]).parent.mkdir(parents=True, exist_ok=True)
        Path(log[0]).write_text(f"{len(GRID_IDS)} grid problems\n")


rule claims:
    input:
        "results/tables/summary.parquet",
        "results/tables/time_to_target.csv",
        ["results/tables/grid_cycles.csv"] if GRID_IDS else [],
        [f"{CLAIMS_REFERENCE}/summary.parquet"] if CLAIMS_REFERENCE else [],
    output:
        csv="results/tables/claims.csv",
        md="results/tables/claims.md",
    log:
        "results/logs/claims.log",
    run:
        from ml2bench.analysis.claims import build as _build_claims

        out = _build_claims("results/tables", CLAIMS, reference=CLAIMS_REFERENCE)
        Path(log[0]).parent.mkdir(parents=True, exist_ok=True)
        Path(log[0]).write_text(f"{len(CLAIMS)} claims -> {out['md']}\n")
