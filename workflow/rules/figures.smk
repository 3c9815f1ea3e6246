# The figure and table rules: one per notebook (workflow/notebooks/<name>.py, a jupytext percent
# file), all from one definition. Each has its own caption in the report (workflow/report/<name>.rst),
# and editing one notebook reruns only its outputs. Resources: the profile's default-resources.
for _name, _outs in paths.NOTEBOOKS.items():
    _keys = ("png", "pdf") if _name.startswith("fig_") else ("csv", "md")
    _category = "Figures" if _name.startswith("fig_") else "Tables"

    rule:
        name:
            _name
        input:
            unpack(notebook_inputs(_name)),
        output:
            **{
                _keys[0]: report(
                    _outs[0], caption=f"../report/{_name}.rst", category=_category
                ),
                _keys[1]: _outs[1],
            },
        log:
            f"logs/figures/{_name}.log",
        conda:
            CONDA_ENV
        resources:
            mem_mb=2000,
        script:
            f"../notebooks/{_name}.py"


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
    script:
        "../scripts/claims.py"


rule stage_figures:
    input:
        paths.stage_targets("figures", config),
