rule make_data:
    input:
        code=code("data"),
    output:
        paths.DATA,
    params:
        spec=dataset_spec,
        seed=config["data"]["seed"],
    log:
        "logs/data/{dataset}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        CONDA_ENV
    script:
        "../scripts/make_data.py"


rule stage_data:
    input:
        paths.stage_targets("data", config),
