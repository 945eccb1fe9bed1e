# ml2bench benchmark sweep: problems x methods x hyper-parameter points x seeds.
#
#   snakemake --cores 2                                            # default sweep (workflow/config/default.yaml)
#   snakemake --cores 2 --configfile workflow/config/ci.yaml       # small CI sweep
#   snakemake --cores 16 --resources gpu=1 --configfile workflow/config/paper.yaml
#   snakemake --executor slurm --workflow-profile workflow/profiles/slurm --configfile workflow/config/paper.yaml
#   snakemake --report report.html                                 # after a run: HTML report of the figures
#
# DAG: train (one job per run, results/runs/<problem_id>/<method>/<point>/seed<k>/) -> aggregate
# (results/tables/{history,summary}.{parquet,csv}) -> comparison (results/tables/comparison.{md,tex,csv})
# -> figures (figures/) -> results/report.md. The config is checked against
# workflow/schemas/config.schema.yaml, the problem/method registries and RunConfig.from_dict before
# any job runs. See workflow/rules/common.smk for the sweep enumeration.

include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/claims.smk"
include: "workflow/rules/analysis.smk"


rule all:
    input:
        "results/report.md",
    default_target: True
