rule data:
    input:
        code=code("data"),
        files=input_files_of_dataset,
    output:
        paths.DATA,
    log:
        "logs/data/{dataset}.log",
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
    params:
        spec=dataset_spec,
        seed=config["data"]["seed"],
    script:
        "../scripts/data.py"


rule stage_data:
    input:
        paths.stage_targets("data", config),
