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
# ml2bench/sweep/config.schema.yaml, the problem/method registries and RunConfig.from_dict before
# any job runs. See workflow/rules/common.smk for the sweep enumeration.


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/claims.smk"
include: "workflow/rules/analysis.smk"


# Every run's files, every table and every figure are inputs of the target, not only of the rules
# that read them: Snakemake does not rebuild a missing intermediate file whose consumers are up to
# date, so a deleted run, results/tables/ or figures/ would stay missing ("Nothing to be done").
# Listed here, each is redone, and its newer files make everything after it rerun.
rule all:
    default_target: True
    input:
        "results/report.md",
        expand("figures/{problem}/{name}.{ext}", problem=PROBLEM_IDS, name=FIGURE_NAMES, ext=("pdf", "png")),
        rules.profile_figures.output,
        rules.comparison.output,
        rules.aggregate.output,
        rules.claims.output if CLAIMS else [],
        rules.grid_cycles.output if GRID_IDS else [],
        rules.speedup.output if SPEEDUP_IDS else [],
        expand("{d}/{f}", d=RUN_DIRS, f=("history.parquet", "summary.parquet")),


# `snakemake tables`: every run and the aggregated tables, without figures and report (CI checks).
rule tables:
    input:
        rules.aggregate.output,
        expand("{d}/{f}", d=RUN_DIRS, f=("history.parquet", "summary.parquet")),
