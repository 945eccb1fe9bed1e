# aggregate -> comparison tables -> figures -> report.md (and `snakemake --report report.html`).


rule aggregate:
    input:
        summaries=expand("{d}/summary.parquet", d=RUN_DIRS),
        histories=expand("{d}/history.parquet", d=RUN_DIRS),
    output:
        history="results/tables/history.parquet",
        summary="results/tables/summary.parquet",
        history_csv="results/tables/history.csv",
        summary_csv="results/tables/summary.csv",
        targets="results/tables/targets.json",
    log:
        "results/logs/aggregate.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        targets=TARGETS,
        run_dirs=RUN_DIRS,
        identities={job.outdir: job.identity() for job in JOB_LIST},  # checked against each summary
    script:
        "../scripts/aggregate.py"


rule comparison:
    input:
        rules.aggregate.output,
    output:
        [
            (
                report(f"results/tables/{name}", category="Tables", labels={"table": name.removesuffix(".csv")})
                if name.endswith(".csv")
                else f"results/tables/{name}"
            )
            for name in TABLE_FILES
        ],
    log:
        "results/logs/comparison.log",
    conda:
        CONDA_ENV
    params:
        python=PYTHON,
    shell:
        "{params.python} -m ml2bench.analysis.tables --tables results/tables > {log} 2>&1"


rule problem_figures:
    input:
        rules.aggregate.output,
        "results/tables/time_to_target.csv",
    output:
        expand("figures/{{problem}}/{name}.pdf", name=FIGURE_NAMES),
        [
            report(
                f"figures/{{problem}}/{name}.png",
                caption="../report/figure.rst",
                category="Figures",
                subcategory="{problem}",
                labels={"problem": "{problem}", "figure": name},
            )
            for name in FIGURE_NAMES
        ],
    log:
        "results/logs/figures/{problem}.log",
    conda:
        CONDA_ENV
    params:
        python=PYTHON,
    shell:
        "{params.python} -m ml2bench.analysis.figures --tables results/tables --out figures --problem {wildcards.problem} > {log} 2>&1"


rule profile_figures:
    input:
        "results/tables/profiles.csv",
        "results/tables/comparison.csv",
    output:
        expand("figures/{name}.pdf", name=SWEEP_FIGURE_NAMES),
        [
            report(
                f"figures/{name}.png",
                caption="../report/profiles.rst",
                category="Performance profiles",
                labels={"figure": name.replace("_", " ")},
            )
            for name in SWEEP_FIGURE_NAMES
        ],
    log:
        "results/logs/figures/performance_profiles.log",
    conda:
        CONDA_ENV
    params:
        python=PYTHON,
    shell:
        "{params.python} -m ml2bench.analysis.figures --tables results/tables --out figures --profiles > {log} 2>&1"


rule report_md:
    input:
        "results/tables/comparison.md",
        "results/tables/comparison.csv",
        expand("figures/{problem}/{name}.png", problem=PROBLEM_IDS, name=FIGURE_NAMES),
        expand("figures/{name}.png", name=SWEEP_FIGURE_NAMES),
        CLAIMS_MD,
    output:
        "results/report.md",
    log:
        "results/logs/report.log",
    conda:
        CONDA_ENV
    params:
        python=PYTHON,
        title=config.get("name", ""),
        claims=" ".join(f"--claims {p}" for p in CLAIMS_MD),
    shell:
        "{params.python} -m ml2bench.analysis.report --tables results/tables --figures figures --out {output} "
        "--title {params.title:q} {params.claims} > {log} 2>&1"
