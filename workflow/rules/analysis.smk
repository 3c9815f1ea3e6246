rule analysis:
    input:
        data=data_of_run,
        model=paths.MODEL,
        run_metrics=paths.RUN_METRICS,
        code=code("analysis"),
    output:
        points=paths.ANALYSIS_POINTS,
        metrics=paths.ANALYSIS_METRICS,
    log:
        "logs/analysis/{experiment}/{stabilizer}/seed{seed}.log",
    benchmark:
        "benchmarks/analysis/{experiment}/{stabilizer}/seed{seed}.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=mem_mb,
        runtime=runtime_min,
    params:
        cfg=config["analysis"],
        intrinsic_dim=intrinsic_dim_of_run,
    script:
        "../scripts/analysis.py"


rule summarize_analysis:
    input:
        metrics=run_files(paths.ANALYSIS_METRICS),
        code=code("analysis"),
    output:
        json=paths.ANALYSIS_SUMMARY,
    log:
        "logs/summarize/analysis.log",
    conda:
        CONDA_ENV
    params:
        stage="analysis",
    script:
        "../scripts/summarize.py"


rule stage_analysis:
    input:
        paths.stage_targets("analysis", config),
