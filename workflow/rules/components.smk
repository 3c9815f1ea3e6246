rule components:
    input:
        data=data_of_run,
        model=paths.MODEL,
        run_metrics=paths.RUN_METRICS,
        code=code("components"),
    output:
        npz=paths.COMPONENTS_NPZ,
        csv=paths.COMPONENTS_CSV,
        metrics=paths.COMPONENTS_METRICS,
    log:
        "logs/components/{experiment}/{stabilizer}/seed{seed}.log",
    benchmark:
        "benchmarks/components/{experiment}/{stabilizer}/seed{seed}.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=mem_mb,
        runtime=runtime_min,
    params:
        cfg=config["components"],
    script:
        "../scripts/components.py"


rule summarize_components:
    input:
        metrics=run_files(paths.COMPONENTS_METRICS),
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
    script:
        "../scripts/summarize.py"


rule stage_components:
    input:
        paths.stage_targets("components", config),
