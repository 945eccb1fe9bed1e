# Claims verdicts (ml2bench/claims.py): only when the config has a `claims:` list
# (workflow/config/claims.yaml). Adds results/tables/claims.{csv,md}; report_md then gets a
# "Claims" section.
from ml2bench.claims import load_claims as _load_claims

try:
    CLAIMS = _load_claims(config)
except ValueError as err:  # ConfigError: one line naming the bad claim
    raise WorkflowError(str(err)) from None
_missing = sorted({p for c in CLAIMS for p in c.problems} - set(PROBLEM_IDS))
if _missing:
    raise WorkflowError(f"claims name problem ids that are not in the sweep: {', '.join(_missing)}; "
                        f"sweep ids: {', '.join(PROBLEM_IDS)}")
CLAIMS_MD = ["results/tables/claims.md"] if CLAIMS else []


rule claims:
    input:
        "results/tables/summary.parquet",
        "results/tables/time_to_target.csv",
    output:
        csv="results/tables/claims.csv",
        md="results/tables/claims.md",
    log:
        "results/logs/claims.log",
    run:
        from ml2bench.claims import build as _build_claims

        out = _build_claims("results/tables", CLAIMS)
        Path(log[0]).parent.mkdir(parents=True, exist_ok=True)
        Path(log[0]).write_text(f"{len(CLAIMS)} claims -> {out['md']}\n")
