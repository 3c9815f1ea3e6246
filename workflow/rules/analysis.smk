# One job per experiment, all its runs (paths.ANALYSIS_DIR).
rule analysis:
    input:
        data=data_of_run,
        runs=paths.RUN_DIR,
        code=code("analysis"),
    output:
        directory(paths.ANALYSIS_DIR),
    log:
        "logs/analysis/{experiment}.log",
    benchmark:
        "benchmarks/analysis/{experiment}.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=mem_mb,
        runtime=post_runtime_min,
    params:
        cfg=config["analysis"],
        intrinsic_dim=intrinsic_dim_of_run,
        runs=analysis_runs,
        # the data set's spec: the kind and generator parameters of the gap's target
        dataset=lambda w: config["data"]["datasets"][
            config["experiments"][w.experiment]["dataset"]
        ],
        data_seed=config["data"]["seed"],
    script:
        "../scripts/analysis.py"


rule summarize_analysis:
    input:
        runs=experiment_dirs(paths.ANALYSIS_DIR),
        code=code("analysis"),
    output:
        json=paths.ANALYSIS_SUMMARY,
    log:
        "logs/summarize/analysis.log",
    conda:
        CONDA_ENV
    params:
        stage="analysis",
        metrics=run_files(paths.ANALYSIS_METRICS),
    script:
        "../scripts/summarize.py"


rule stage_analysis:
    input:
        paths.stage_targets("analysis", config),
