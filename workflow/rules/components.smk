# One job per experiment, all its runs (paths.COMPONENTS_DIR).
rule components:
    input:
        data=data_of_run,
        runs=paths.RUN_DIR,
        code=code("components"),
    output:
        directory(paths.COMPONENTS_DIR),
    log:
        "logs/components/{experiment}.log",
    benchmark:
        "benchmarks/components/{experiment}.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=mem_mb,
        runtime=post_runtime_min,
    params:
        cfg=config["components"],
        runs=components_runs,
    script:
        "../scripts/components.py"


rule summarize_components:
    input:
        runs=experiment_dirs(paths.COMPONENTS_DIR),
        code=code("components"),
    output:
        json=paths.COMPONENTS_SUMMARY,
        csv=paths.COMPONENTS_SPECTRA,
    log:
        "logs/summarize/components.log",
    conda:
        CONDA_ENV
    params:
        stage="components",
        metrics=run_files(paths.COMPONENTS_METRICS),
    script:
        "../scripts/summarize.py"


rule stage_components:
    input:
        paths.stage_targets("components", config),
