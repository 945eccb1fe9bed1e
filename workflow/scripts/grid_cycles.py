"""Rule ``grid_cycles`` (workflow/rules/claims.smk): V-cycle counts of the config's ``claims_grid``."""

from pathlib import Path

from ml2bench.sweep.grid_cycles import write_grid_cycles

config = snakemake.config
write_grid_cycles(config, snakemake.output[0])
log = Path(snakemake.log[0])
log.parent.mkdir(parents=True, exist_ok=True)
log.write_text(f"{len(config.get('claims_grid') or [])} grid problems\n")
