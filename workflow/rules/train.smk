# One job per experiment: it trains every (stabilizer, seed) run of it, one after the other, into
# results/runs/<experiment>/<stabilizer>/seed<k>/ (paths.RUN_DIR).
rule train:
    input:
        data=data_of_run,
        code=code("train"),
    output:
        directory(paths.RUN_DIR),
    log:
        "logs/train/{experiment}.log",
    benchmark:
        "benchmarks/train/{experiment}.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=mem_mb,
        runtime=runtime_min,
    params:
        runs=train_runs,
    script:
        "../scripts/train.py"


rule summarize_train:
    input:
        runs=experiment_dirs(paths.RUN_DIR),
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
        metrics=run_files(paths.RUN_METRICS),
        history=run_files(paths.HISTORY),
    script:
        "../scripts/summarize.py"


rule stage_train:
    input:
        paths.stage_targets("train", config),
