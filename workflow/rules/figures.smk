# The figure and table rules: one per notebook (workflow/notebooks/<name>.py, a jupytext percent
# file), all from one definition. Each shows the experiments that paths.NOTEBOOK_SHOWS selects by
# their properties (never by name): they come as params, the output directories of their stages
# as inputs and the per-run files inside those it reads as params.components/analysis. Each has
# its own caption in the report (workflow/report/<name>.rst), and editing one notebook reruns only
# its outputs. The notebook's name is bound as a param when the rule is defined: the script path is
# formatted from it when the job runs (a bare loop variable would have its last value by then).
for _nb in paths.NOTEBOOKS:

    rule:
        name:
            _nb
        input:
            unpack(notebook_inputs(_nb)),
        output:
            **notebook_outputs(_nb),
        log:
            f"logs/figures/{_nb}.log",
        conda:
            CONDA_ENV
        resources:
            mem_mb=2000,
        params:
            **notebook_files(_nb),
            notebook=_nb,
            experiments=notebook_experiments(_nb),
        script:
            "../notebooks/{params.notebook}.py"


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
    params:
        experiments=EXPERIMENTS,
    script:
        "../scripts/claims.py"


rule stage_figures:
    input:
        paths.stage_targets("figures", config),
