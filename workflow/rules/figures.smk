# One rule per figure/table notebook (workflow/notebooks/<name>.py, a jupytext percent file), so
# that each has its own caption in the report and editing one notebook reruns only its outputs.
for nb, (first, second) in paths.NOTEBOOKS.items():
    is_figure = nb.startswith("fig_")

    rule:
        name:
            nb
        input:
            unpack(notebook_inputs(nb)),
        output:
            **{
                ("png" if is_figure else "csv"): report(
                    first,
                    caption=f"../report/{nb}.rst",
                    category="Figures" if is_figure else "Tables",
                ),
                ("pdf" if is_figure else "md"): second,
            },
        log:
            f"logs/figures/{nb}.log",
        conda:
            CONDA_ENV
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            experiments=config["experiments"],
        script:
            f"../notebooks/{nb}.py"


rule claims:
    input:
        **paths.SUMMARIES,
        paper_map=paths.PAPER_MAP,
        code=code("figures"),
    output:
        json=paths.CLAIMS_JSON,
        md=paths.CLAIMS_MD,
        metrics=paths.CLAIMS_METRICS,
    log:
        "logs/figures/claims.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/claims.py"


rule stage_figures:
    input:
        paths.stage_targets("figures", config),
