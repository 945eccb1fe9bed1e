"""Rule ``speedup`` (workflow/rules/claims.smk): parallel Schwarz speed-ups of the config's ``claims_speedup``."""

from pathlib import Path

from ml2bench.sweep.speedup import write_speedup

config = snakemake.config
write_speedup(config, snakemake.output[0])
log = Path(snakemake.log[0])
log.parent.mkdir(parents=True, exist_ok=True)
log.write_text(f"{len(config.get('claims_speedup') or [])} speed-up entries\n")
