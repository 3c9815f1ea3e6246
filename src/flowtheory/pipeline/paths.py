"""Every path template, stage target and stage definition, shared by the Snakefile and the
``dvc.yaml`` generator (:mod:`flowtheory.pipeline.dvc_export`), so that nothing is written twice.

Stages run in this order: data -> train -> analysis -> components -> figures. Each stage owns one
directory under ``results/`` (DVC-cached unless marked ``cache: false``) and its small summaries
under ``metrics/`` and ``plots/`` (kept in Git).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flowtheory.pipeline.config import runs

__all__ = [
    "NOTEBOOKS",
    "STAGES",
    "Stage",
    "notebook_inputs",
    "run_files",
    "run_paths",
    "stage_targets",
]

PKG = "src/flowtheory"

DATA = "results/data/{dataset}.npz"
RUN = "results/runs/{experiment}/{stabilizer}/seed{seed}"
MODEL = RUN + "/model.pt"
HISTORY = RUN + "/history.csv"
RUN_METRICS = RUN + "/metrics.json"
ANALYSIS = "results/analysis/{experiment}/{stabilizer}/seed{seed}"
ANALYSIS_POINTS = ANALYSIS + "/points.csv"
ANALYSIS_METRICS = ANALYSIS + "/metrics.json"
COMPONENTS = "results/components/{experiment}/{stabilizer}/seed{seed}"
COMPONENTS_NPZ = COMPONENTS + "/components.npz"
COMPONENTS_CSV = COMPONENTS + "/components.csv"
COMPONENTS_METRICS = COMPONENTS + "/metrics.json"

TRAIN_SUMMARY = "metrics/train.json"
TRAIN_HISTORY = "plots/train_history.csv"
ANALYSIS_SUMMARY = "metrics/analysis.json"
COMPONENTS_SUMMARY = "metrics/components.json"
COMPONENTS_SPECTRA = "plots/component_spectra.csv"
CLAIMS_JSON = "results/claims.json"
CLAIMS_MD = "results/claims.md"
CLAIMS_METRICS = "metrics/claims.json"
PAPER_MAP = "paper_map.yaml"

FIGURES_DIR = "results/figures"
TABLES_DIR = "results/tables"

#: figure/table notebooks (workflow/notebooks/<name>.py) and what each writes
NOTEBOOKS: dict[str, list[str]] = {
    "fig_a_linear": [f"{FIGURES_DIR}/fig_a_linear.png", f"{FIGURES_DIR}/fig_a_linear.pdf"],
    "fig_b_training": [f"{FIGURES_DIR}/fig_b_training.png", f"{FIGURES_DIR}/fig_b_training.pdf"],
    "fig_c_scurve": [f"{FIGURES_DIR}/fig_c_scurve.png", f"{FIGURES_DIR}/fig_c_scurve.pdf"],
    "fig_d_toys": [f"{FIGURES_DIR}/fig_d_toys.png", f"{FIGURES_DIR}/fig_d_toys.pdf"],
    "fig_e_mnist": [f"{FIGURES_DIR}/fig_e_mnist.png", f"{FIGURES_DIR}/fig_e_mnist.pdf"],
    "fig_covariance": [f"{FIGURES_DIR}/fig_covariance.png", f"{FIGURES_DIR}/fig_covariance.pdf"],
    "fig_sweep": [f"{FIGURES_DIR}/fig_sweep.png", f"{FIGURES_DIR}/fig_sweep.pdf"],
    "table_f_nll": [f"{TABLES_DIR}/table_f_nll.csv", f"{TABLES_DIR}/table_f_nll.md"],
}


#: which experiments' per-run outputs each notebook reads (beyond the stage summaries)
NOTEBOOK_EXPERIMENTS: dict[str, list[str]] = {
    "fig_a_linear": ["gaussian_linear"],
    "fig_b_training": [],
    "fig_c_scurve": ["scurve_mlp"],
    "fig_d_toys": ["line_linear", "circle_mlp", "swissroll_mlp"],
    "fig_e_mnist": ["mnist_mlp"],
    "fig_covariance": ["scurve_mlp", "circle_mlp", "swissroll_mlp", "gaussian_linear"],
    "fig_sweep": ["scurve_sweep"],
    "table_f_nll": [],
}

#: the stage summaries every notebook and the claims stage may read
SUMMARIES = {
    "train_summary": TRAIN_SUMMARY,
    "train_history": TRAIN_HISTORY,
    "analysis_summary": ANALYSIS_SUMMARY,
    "components_summary": COMPONENTS_SUMMARY,
    "component_spectra": COMPONENTS_SPECTRA,
}


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: a Snakemake target rule ``stage_<name>`` and one DVC stage."""

    name: str
    params: list[str]  # top-level config keys the stage reads
    outs: list[str]  # DVC-cached outputs (directories)
    outs_git: list[str] = field(default_factory=list)  # small outputs kept in Git (cache: false)
    metrics: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    upstream: list[str] = field(default_factory=list)  # outputs of earlier stages it reads
    scripts: list[str] = field(default_factory=list)  # workflow/scripts or notebooks
    modules: list[str] = field(default_factory=list)  # src/flowtheory modules its rules import

    @property
    def rule_file(self) -> str:
        return f"workflow/rules/{self.name}.smk"

    def module_paths(self) -> list[str]:
        return [f"{PKG}/{m}" for m in self.modules]


#: every script imports jobs (and the package's __init__); modules are listed with everything they
#: import from flowtheory, transitively (a test checks this), so that an edit reruns exactly the rules
#: whose code changed
_COMMON = ["__init__.py", "pipeline/__init__.py", "pipeline/jobs.py", "pipeline/storage.py", "stages/__init__.py"]
_FLOW = ["science/__init__.py", "science/flows.py"]
_LOAD_RUN = [*_FLOW, "pipeline/checkpoints.py", "pipeline/config.py", "science/covariance.py", "science/stats.py"]

STAGES: dict[str, Stage] = {
    s.name: s
    for s in [
        Stage(
            name="data",
            params=["data"],
            outs=["results/data"],
            scripts=["workflow/scripts/data.py"],
            modules=[
                *_COMMON,
                "datasets/__init__.py",
                "datasets/build.py",
                "datasets/manifolds.py",
                "datasets/mnist.py",
                "datasets/spec.py",
                "datasets/toys.py",
                "stages/data.py",
            ],
        ),
        Stage(
            name="train",
            params=["seeds", "device", "flows", "stabilizers", "train", "experiments"],
            outs=["results/runs"],
            metrics=[TRAIN_SUMMARY],
            plots=[TRAIN_HISTORY],
            upstream=["results/data"],
            scripts=["workflow/scripts/train.py", "workflow/scripts/summarize.py"],
            modules=[
                *_COMMON,
                *_FLOW,
                "pipeline/config.py",
                "science/stabilizers.py",
                "science/training.py",
                "stages/summarize.py",
                "stages/train.py",
            ],
        ),
        Stage(
            name="analysis",
            params=["analysis"],
            outs=["results/analysis"],
            metrics=[ANALYSIS_SUMMARY],
            upstream=["results/data", "results/runs"],
            scripts=["workflow/scripts/analysis.py", "workflow/scripts/summarize.py"],
            modules=[*_COMMON, *_LOAD_RUN, "science/oracles.py", "stages/analysis.py", "stages/summarize.py"],
        ),
        Stage(
            name="components",
            params=["components"],
            outs=["results/components"],
            metrics=[COMPONENTS_SUMMARY],
            plots=[COMPONENTS_SPECTRA],
            upstream=["results/data", "results/runs"],
            scripts=["workflow/scripts/components.py", "workflow/scripts/summarize.py"],
            modules=[*_COMMON, *_LOAD_RUN, "science/components.py", "stages/components.py", "stages/summarize.py"],
        ),
        Stage(
            name="figures",
            params=[],
            outs=[],
            outs_git=[FIGURES_DIR, TABLES_DIR, CLAIMS_JSON, CLAIMS_MD],
            metrics=[CLAIMS_METRICS],
            upstream=[
                "results/data",
                "results/runs",
                "results/analysis",
                "results/components",
                TRAIN_SUMMARY,
                ANALYSIS_SUMMARY,
                COMPONENTS_SUMMARY,
            ],
            scripts=["workflow/notebooks", "workflow/report", "workflow/scripts/claims.py", PAPER_MAP],
            modules=[
                *_COMMON,
                "pipeline/config.py",
                "pipeline/paths.py",
                "stages/claims.py",
                "stages/figures.py",
                "stages/summarize.py",
            ],
        ),
    ]
}


def run_paths(template: str, config: dict) -> list[str]:
    """``template`` expanded over the training grid (experiment × stabilizer × seed)."""
    return run_files(template, config)


def run_files(template: str, config: dict, experiments: list[str] | None = None) -> list[str]:
    """Like :func:`run_paths`, optionally only for some experiments."""
    return [
        template.format(experiment=e, stabilizer=s, seed=k)
        for e, s, k in runs(config)
        if experiments is None or e in experiments
    ]


def notebook_inputs(config: dict, name: str) -> dict:
    """What notebook ``name`` reads: the stage summaries plus the per-run outputs of its experiments."""
    exps = [e for e in NOTEBOOK_EXPERIMENTS[name] if e in config["experiments"]]
    datasets = sorted({config["experiments"][e]["dataset"] for e in exps})
    return {
        **SUMMARIES,
        "data": [DATA.format(dataset=d) for d in datasets],
        "components": run_files(COMPONENTS_NPZ, config, exps),
        "analysis": run_files(ANALYSIS_POINTS, config, exps),
    }


def stage_targets(stage: str, config: dict) -> list[str]:
    """The files a stage's target rule ``stage_<name>`` requests."""
    if stage == "data":
        used = dict.fromkeys(exp["dataset"] for exp in config["experiments"].values())
        return [DATA.format(dataset=d) for d in used]
    if stage == "train":
        return (
            run_paths(MODEL, config)
            + run_paths(HISTORY, config)
            + run_paths(RUN_METRICS, config)
            + [
                TRAIN_SUMMARY,
                TRAIN_HISTORY,
            ]
        )
    if stage == "analysis":
        return run_paths(ANALYSIS_POINTS, config) + run_paths(ANALYSIS_METRICS, config) + [ANALYSIS_SUMMARY]
    if stage == "components":
        return (
            run_paths(COMPONENTS_NPZ, config)
            + run_paths(COMPONENTS_CSV, config)
            + run_paths(COMPONENTS_METRICS, config)
            + [COMPONENTS_SUMMARY, COMPONENTS_SPECTRA]
        )
    if stage == "figures":
        return [p for outs in NOTEBOOKS.values() for p in outs] + [CLAIMS_JSON, CLAIMS_MD, CLAIMS_METRICS]
    raise KeyError(f"unknown stage {stage!r}; expected one of {list(STAGES)}")
