# Claims verdicts (ml2bench/analysis/claims.py): only when the config has a `claims:` list
# (workflow/config/claims.yaml). Adds results/tables/claims.{csv,md}; report_md then gets a
# "Claims" section.
from ml2bench.analysis.claims import load_claims as _load_claims

try:
    CLAIMS = _load_claims(config)
except ValueError as err:  # ConfigError: one line naming the bad claim
    raise WorkflowError(str(err)) from None
GRID_IDS = [g["id"] for g in config.get("claims_grid") or []]
_missing = sorted({p for c in CLAIMS if c.table == "runs" for p in c.problems} - set(PROBLEM_IDS)
                  | {p for c in CLAIMS if c.table == "grid_cycles" for p in c.problems} - set(GRID_IDS))
if _missing:
    raise WorkflowError(f"claims name problem ids that are not in the sweep: {', '.join(_missing)}; "
                        f"sweep ids: {', '.join(PROBLEM_IDS)}; claims_grid ids: {', '.join(GRID_IDS) or '-'}")
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
    output:
        csv="results/tables/claims.csv",
        md="results/tables/claims.md",
    log:
        "results/logs/claims.log",
    run:
        from ml2bench.analysis.claims import build as _build_claims

        out = _build_claims("results/tables", CLAIMS)
        Path(log[0]).parent.mkdir(parents=True, exist_ok=True)
        Path(log[0]).write_text(f"{len(CLAIMS)} claims -> {out['md']}\n")
