rule train:
    input:
        data=data_of_run,
        code=code("train"),
    output:
        model=paths.MODEL,
        history=paths.HISTORY,
        metrics=paths.RUN_METRICS,
    log:
        "logs/train/{experiment}/{stabilizer}/seed{seed}.log",
    benchmark:
        "benchmarks/train/{experiment}/{stabilizer}/seed{seed}.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=mem_mb,
        runtime=runtime_min,
    params:
        spec=run_spec,
    script:
        "../scripts/train.py"


rule summarize_train:
    input:
        metrics=run_files(paths.RUN_METRICS),
        history=run_files(paths.HISTORY),
        code=code("train"),
    output:
        json=paths.TRAIN_SUMMARY,
        csv=paths.TRAIN_HISTORY,
    log:
        "logs/summarize/train.log",
    conda:
        CONDA_ENV
    params:
        stage="train",
    script:
        "../scripts/summarize.py"


rule stage_train:
    input:
        paths.stage_targets("train", config),
