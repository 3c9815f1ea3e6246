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


# The gallery: one fixed-size page per experiment (workflow/notebooks/gallery.py), each under its own
# subcategory of the report's "Gallery". The inputs are the experiment's own stage directories, its
# data set and the summaries and verdicts every figure reads.
rule gallery:
    input:
        unpack(gallery_inputs),
    output:
        png=report(
            paths.GALLERY_PNG,
            caption="../report/gallery.rst",
            category="Gallery",
            subcategory="{experiment}",
        ),
    log:
        "logs/figures/gallery/{experiment}.log",
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
    params:
        notebook=paths.GALLERY_NOTEBOOK,
        experiments=lambda wc: gallery_params(wc)["experiments"],
        analysis=lambda wc: gallery_params(wc)["analysis"],
        components=lambda wc: gallery_params(wc)["components"],
    script:
        "../notebooks/gallery.py"


rule claims:
    input:
        **paths.SUMMARIES,
        # the chaos measurement, when there is one: its fragile verdicts are marked (stages/claims.py)
        **({"chaos": paths.CHAOS_JSON} if Path(paths.CHAOS_JSON).is_file() else {}),
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
        config_digest=ftconfig.digest(config),
        experiment_digests=ftchaos.experiment_digests(config),
    script:
        "../scripts/claims.py"


rule stage_figures:
    input:
        paths.stage_targets("figures", config),
