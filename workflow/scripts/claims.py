"""Rule ``claims`` (workflow/rules/claims.smk): results/tables/claims.{csv,md} from the config's claims,
checked when the workflow was parsed."""

from pathlib import Path

from ml2bench.analysis.claims import build

params = snakemake.params
out = build("results/tables", params.claims, reference=params.reference)
log = Path(snakemake.log[0])
log.parent.mkdir(parents=True, exist_ok=True)
log.write_text(f"{len(params.claims)} claims -> {out['md']}\n")
