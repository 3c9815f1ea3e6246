# One rule per figure/table notebook (workflow/notebooks/<name>.py, a jupytext percent file): each has
# its own caption in the report, and editing one notebook reruns only its outputs.
rule fig_a_linear:
    input:
        unpack(notebook_inputs("fig_a_linear")),
    output:
        png=report(
            "results/figures/fig_a_linear.png",
            caption="../report/fig_a_linear.rst",
            category="Figures",
        ),
        pdf="results/figures/fig_a_linear.pdf",
    log:
        "logs/figures/fig_a_linear.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../notebooks/fig_a_linear.py"


rule fig_b_training:
    input:
        unpack(notebook_inputs("fig_b_training")),
    output:
        png=report(
            "results/figures/fig_b_training.png",
            caption="../report/fig_b_training.rst",
            category="Figures",
        ),
        pdf="results/figures/fig_b_training.pdf",
    log:
        "logs/figures/fig_b_training.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../notebooks/fig_b_training.py"


rule fig_c_scurve:
    input:
        unpack(notebook_inputs("fig_c_scurve")),
    output:
        png=report(
            "results/figures/fig_c_scurve.png",
            caption="../report/fig_c_scurve.rst",
            category="Figures",
        ),
        pdf="results/figures/fig_c_scurve.pdf",
    log:
        "logs/figures/fig_c_scurve.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../notebooks/fig_c_scurve.py"


rule fig_d_toys:
    input:
        unpack(notebook_inputs("fig_d_toys")),
    output:
        png=report(
            "results/figures/fig_d_toys.png",
            caption="../report/fig_d_toys.rst",
            category="Figures",
        ),
        pdf="results/figures/fig_d_toys.pdf",
    log:
        "logs/figures/fig_d_toys.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../notebooks/fig_d_toys.py"


rule fig_e_mnist:
    input:
        unpack(notebook_inputs("fig_e_mnist")),
    output:
        png=report(
            "results/figures/fig_e_mnist.png",
            caption="../report/fig_e_mnist.rst",
            category="Figures",
        ),
        pdf="results/figures/fig_e_mnist.pdf",
    log:
        "logs/figures/fig_e_mnist.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../notebooks/fig_e_mnist.py"


rule fig_covariance:
    input:
        unpack(notebook_inputs("fig_covariance")),
    output:
        png=report(
            "results/figures/fig_covariance.png",
            caption="../report/fig_covariance.rst",
            category="Figures",
        ),
        pdf="results/figures/fig_covariance.pdf",
    log:
        "logs/figures/fig_covariance.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../notebooks/fig_covariance.py"


rule fig_sweep:
    input:
        unpack(notebook_inputs("fig_sweep")),
    output:
        png=report(
            "results/figures/fig_sweep.png",
            caption="../report/fig_sweep.rst",
            category="Figures",
        ),
        pdf="results/figures/fig_sweep.pdf",
    log:
        "logs/figures/fig_sweep.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../notebooks/fig_sweep.py"


rule table_f_nll:
    input:
        unpack(notebook_inputs("table_f_nll")),
    output:
        csv=report(
            "results/tables/table_f_nll.csv",
            caption="../report/table_f_nll.rst",
            category="Tables",
        ),
        md="results/tables/table_f_nll.md",
    log:
        "logs/figures/table_f_nll.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../notebooks/table_f_nll.py"


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
