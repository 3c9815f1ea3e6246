"""Every path template, stage target and stage definition, shared by the Snakefile and the
``dvc.yaml`` generator (:mod:`flowtheory.pipeline.dvc_export`), so that nothing is written twice.

Stages run in this order: data -> train -> analysis -> components -> figures. Each stage owns one
directory under ``results/`` (DVC-cached unless marked ``cache: false``) and its small summaries
under ``metrics/`` and ``plots/`` (kept in Git).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flowtheory.pipeline.config import runs
from flowtheory.pipeline.experiments import describe, select

__all__ = [
    "GALLERY_NOTEBOOK",
    "GALLERY_PNG",
    "NOTEBOOKS",
    "gallery_files",
    "gallery_inputs",
    "gallery_params",
    "experiment_dirs",
    "experiment_runs",
    "notebook_files",
    "stage_files",
    "NOTEBOOK_SHOWS",
    "STAGES",
    "Stage",
    "notebook_experiments",
    "notebook_inputs",
    "run_files",
    "run_paths",
    "stage_targets",
]

PKG = "src/flowtheory"

DATA = "results/data/{dataset}.npz"
# One job per experiment and stage: it writes one directory with every run's files in it, one
# subdirectory per (stabilizer, seed). A process (Python, Snakemake's preamble, `import torch`)
# per run cost about as much as the science on the 2-core machine (results/benchmarks.md).
RUN_DIR = "results/runs/{experiment}"
ANALYSIS_DIR = "results/analysis/{experiment}"
COMPONENTS_DIR = "results/components/{experiment}"
RUN = RUN_DIR + "/{stabilizer}/seed{seed}"
MODEL = RUN + "/model.pt"
HISTORY = RUN + "/history.csv"
RUN_METRICS = RUN + "/metrics.json"
ANALYSIS = ANALYSIS_DIR + "/{stabilizer}/seed{seed}"
ANALYSIS_POINTS = ANALYSIS + "/points.csv"
ANALYSIS_METRICS = ANALYSIS + "/metrics.json"
COMPONENTS = COMPONENTS_DIR + "/{stabilizer}/seed{seed}"
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
#: the chaos measurement (``python -m bench.chaos``, docs/measurements.md#chaos), committed beside
#: the results: ``make verify`` reads it, and the claims rule names the verdicts it found fragile
CHAOS_JSON = "results/chaos.json"
PAPER_MAP = "paper_map.yaml"

FIGURES_DIR = "results/figures"
TABLES_DIR = "results/tables"

#: figure/table notebooks (workflow/notebooks/<name>.py) and what each writes: the main figures, one
#: or two per claim of the paper and of a fixed size, the scorecard, and the tables
NOTEBOOKS: dict[str, list[str]] = {
    "fig_scorecard": [f"{FIGURES_DIR}/fig_scorecard.png", f"{FIGURES_DIR}/fig_scorecard.pdf"],
    "fig_a_linear": [f"{FIGURES_DIR}/fig_a_linear.png", f"{FIGURES_DIR}/fig_a_linear.pdf"],
    "fig_b_training": [f"{FIGURES_DIR}/fig_b_training.png", f"{FIGURES_DIR}/fig_b_training.pdf"],
    "fig_c_scurve": [f"{FIGURES_DIR}/fig_c_scurve.png", f"{FIGURES_DIR}/fig_c_scurve.pdf"],
    "fig_d_toys": [f"{FIGURES_DIR}/fig_d_toys.png", f"{FIGURES_DIR}/fig_d_toys.pdf"],
    "fig_e_mnist": [f"{FIGURES_DIR}/fig_e_mnist.png", f"{FIGURES_DIR}/fig_e_mnist.pdf"],
    "fig_covariance": [f"{FIGURES_DIR}/fig_covariance.png", f"{FIGURES_DIR}/fig_covariance.pdf"],
    "fig_sweep": [f"{FIGURES_DIR}/fig_sweep.png", f"{FIGURES_DIR}/fig_sweep.pdf"],
    "fig_tangent": [f"{FIGURES_DIR}/fig_tangent.png", f"{FIGURES_DIR}/fig_tangent.pdf"],
    "fig_shrinkage": [f"{FIGURES_DIR}/fig_shrinkage.png", f"{FIGURES_DIR}/fig_shrinkage.pdf"],
    "fig_gap": [f"{FIGURES_DIR}/fig_gap.png", f"{FIGURES_DIR}/fig_gap.pdf"],
    "table_f_nll": [f"{TABLES_DIR}/table_f_nll.csv", f"{TABLES_DIR}/table_f_nll.md"],
    "table_conclusions": [f"{TABLES_DIR}/table_conclusions.csv", f"{TABLES_DIR}/table_conclusions.md"],
}

#: the gallery: one page per experiment (workflow/notebooks/gallery.py, one job each), under its own
#: subcategory of the report's "Gallery"
GALLERY_NOTEBOOK = "gallery"
GALLERY_PNG = FIGURES_DIR + "/gallery/{experiment}.png"


@dataclass(frozen=True)
class Shows:
    """Which experiments a notebook shows, by their properties (a selector, see
    :mod:`flowtheory.pipeline.experiments`, or a list of selectors: the experiments any of them
    picks), in words, and which of their per-run outputs it reads beyond the stage summaries
    (``components``: ``components.npz``; ``analysis``: ``points.csv``)."""

    what: str
    selector: dict | list[dict] | None
    reads: tuple[str, ...] = ()


def select_shown(table: dict[str, dict], selector: dict | list[dict] | None) -> dict[str, list[str]]:
    """:func:`flowtheory.pipeline.experiments.select` for a :class:`Shows` selector: with a list,
    every experiment any selector picks (config order), with the union of their runs."""
    if not isinstance(selector, list):
        return select(table, selector)
    picked = [select(table, s) for s in selector]
    out = {}
    for name, props in table.items():
        stabs = {s for p in picked for s in p.get(name, ())}
        if stabs:
            out[name] = [s for s in props["stabilizers"] if s in stabs]
    return out


#: what each notebook shows; the rule passes the selected experiments as ``params.experiments``
#: and their per-run outputs as inputs, so the figure, its inputs and the DAG agree
NOTEBOOK_SHOWS: dict[str, Shows] = {
    "fig_scorecard": Shows("every experiment (the checks of paper_map.yaml that apply to it)", None),
    "fig_a_linear": Shows("a linear flow (on any data: the linear theory is exact)", {"flow": {"linear": True}}),
    "fig_b_training": Shows(
        "training with and without stabilizers on degenerate data (an experiment with an unregularized run)",
        {"dataset": {"degenerate": True}, "stabilizers": "none"},
    ),
    "fig_c_scurve": Shows(
        "a nonlinear flow on a manifold of known intrinsic dimension (not a strength sweep; the S-curve as the example)",
        {"dataset": {"manifold": True}, "flow": {"linear": False}, "experiment": {"sweep": False}},
        ("components",),
    ),
    "fig_d_toys": Shows(
        "a flow on a toy manifold other than the S-curve (not a strength sweep)",
        {"dataset": {"manifold": True, "kind": {"not": "scurve"}}, "experiment": {"sweep": False}},
        ("components",),
    ),
    "fig_e_mnist": Shows("a flow on MNIST", {"dataset": {"kind": "mnist"}}, ("components",)),
    "fig_covariance": Shows(
        "a nonlinear flow on a manifold of known intrinsic dimension (not a strength sweep)",
        {"dataset": {"manifold": True}, "flow": {"linear": False}, "experiment": {"sweep": False}},
        ("analysis",),
    ),
    "fig_sweep": Shows(
        "a stabilized linear flow on data of known, invertible covariance, or a sweep of strengths λ on degenerate data",
        [
            {
                "dataset": {"known_cov": True, "singular_cov": False},
                "flow": {"linear": True},
                "stabilizers": "any_stabilized",
            },
            {"dataset": {"degenerate": True}, "experiment": {"sweep": True}},
        ],
    ),
    "fig_tangent": Shows(
        "a nonlinear flow on a toy manifold with known tangent spaces",
        {"dataset": {"manifold": True}, "flow": {"linear": False}, "stabilizers": {"kind": ["jacobian", "noise"]}},
    ),
    "fig_shrinkage": Shows(
        "a nonlinear flow on a toy manifold with known tangent spaces",
        {"dataset": {"manifold": True}, "flow": {"linear": False}, "stabilizers": {"kind": ["jacobian", "noise"]}},
    ),
    "fig_gap": Shows("every experiment (the runs whose gap to the optimum is known)", None),
    "table_f_nll": Shows("every experiment", None),
    "table_conclusions": Shows("every experiment (the checks of paper_map.yaml that apply to it)", None),
}

#: the stage summaries every notebook and the claims stage may read
SUMMARIES = {
    "train_summary": TRAIN_SUMMARY,
    "train_history": TRAIN_HISTORY,
    "analysis_summary": ANALYSIS_SUMMARY,
    "components_summary": COMPONENTS_SUMMARY,
    "component_spectra": COMPONENTS_SPECTRA,
}
#: what every figure reads besides the summaries: the claims' verdicts and their thresholds
VERDICTS = {"claims": CLAIMS_JSON, "paper_map": PAPER_MAP}


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
_FLOW = ["science/__init__.py", "science/flows.py", "science/fused.py", "science/kinds.py"]
#: pipeline/config.py checks data sets against their ground truth
_CONFIG = [
    "pipeline/config.py",
    "pipeline/runkey.py",
    "datasets/__init__.py",
    "datasets/truth.py",
    "science/__init__.py",
    "science/kinds.py",
]
_LOAD_RUN = [*_FLOW, *_CONFIG, "pipeline/checkpoints.py", "science/covariance.py", "science/stats.py"]
#: the data generators (the analysis stage samples the target of the gap from them)
_GENERATORS = [
    "datasets/build.py",
    "datasets/manifolds.py",
    "datasets/mnist.py",
    "datasets/spec.py",
    "datasets/toys.py",
]

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
                *_CONFIG,
                "science/ensemble.py",
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
            modules=[
                *_COMMON,
                *_LOAD_RUN,
                *_GENERATORS,
                "science/optimum.py",
                "science/oracles.py",
                "stages/analysis.py",
                "stages/summarize.py",
            ],
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
            params=["seeds", "data", "flows", "stabilizers", "experiments"],  # experiment properties
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
                *_CONFIG,
                *_FLOW,  # the claims' λ-sweep fit is the science's own (oracles.sweep_slopes)
                "pipeline/experiments.py",
                "pipeline/paths.py",
                "pipeline/chaos.py",  # the claims read the chaos measurement's fragile verdicts
                "science/covariance.py",
                "science/oracles.py",
                "science/stats.py",
                "stages/claims.py",
                "stages/figstyle.py",
                "stages/figures.py",
                "stages/gallery.py",
                "stages/paperfigs.py",
                "stages/scorecard.py",
                "stages/summarize.py",
            ],
        ),
    ]
}


def run_paths(template: str, config: dict) -> list[str]:
    """``template`` expanded over the training grid (experiment × stabilizer × seed)."""
    return run_files(template, config)


def run_files(template: str, config: dict, selected: dict[str, list[str]] | None = None) -> list[str]:
    """Like :func:`run_paths`, optionally only for the runs ``selected`` ({experiment: [stabilizer]},
    as :func:`flowtheory.pipeline.experiments.select` returns)."""
    return [
        template.format(experiment=e, stabilizer=s, seed=k)
        for e, s, k in runs(config)
        if selected is None or s in selected.get(e, ())
    ]


def experiment_dirs(template: str, config: dict, selected: dict[str, list[str]] | None = None) -> list[str]:
    """One stage's per-experiment output directories (``RUN_DIR``, ``ANALYSIS_DIR`` or
    ``COMPONENTS_DIR``), optionally only of the experiments in ``selected``."""
    return [template.format(experiment=e) for e in config["experiments"] if selected is None or e in selected]


def experiment_runs(config: dict, experiment: str, **templates: str) -> list[dict]:
    """The runs of one experiment (a job's work list), in config order: each one's ``stabilizer``
    and ``seed`` and every ``templates`` entry formatted for it, e.g. ``model=MODEL``."""
    out = []
    for e, s, k in runs(config):
        if e == experiment:
            keys = {"experiment": e, "stabilizer": s, "seed": k}
            out.append({"stabilizer": s, "seed": k, **{n: t.format(**keys) for n, t in templates.items()}})
    return out


def notebook_experiments(config: dict, name: str, table: dict[str, dict] | None = None) -> dict[str, dict]:
    """The experiments notebook ``name`` shows (:data:`NOTEBOOK_SHOWS`), in config order: each one's
    properties (:func:`flowtheory.pipeline.experiments.describe`) with ``runs``, its selected
    stabilizers."""
    table = describe(config) if table is None else table
    return {e: {**table[e], "runs": stabs} for e, stabs in select_shown(table, NOTEBOOK_SHOWS[name].selector).items()}


def _notebook_selection(config: dict, name: str) -> dict[str, list[str]]:
    return {e: p["runs"] for e, p in notebook_experiments(config, name).items()}


def notebook_inputs(config: dict, name: str) -> dict:
    """What notebook ``name`` depends on: the stage summaries plus the output directories of the
    experiments it shows (their per-run files, which it reads, are :func:`notebook_files`)."""
    shows = NOTEBOOK_SHOWS[name]
    selected = _notebook_selection(config, name)
    datasets = sorted({config["experiments"][e]["dataset"] for e in selected})
    return {
        **SUMMARIES,
        **VERDICTS,
        "data": [DATA.format(dataset=d) for d in datasets],
        "components": experiment_dirs(COMPONENTS_DIR, config, selected) if "components" in shows.reads else [],
        "analysis": experiment_dirs(ANALYSIS_DIR, config, selected) if "analysis" in shows.reads else [],
    }


def notebook_files(config: dict, name: str) -> dict[str, list[str]]:
    """The per-run files notebook ``name`` reads (``params.components``, ``params.analysis``): those
    of the runs it shows, inside the directories of :func:`notebook_inputs`."""
    shows = NOTEBOOK_SHOWS[name]
    selected = _notebook_selection(config, name)
    return {
        "components": run_files(COMPONENTS_NPZ, config, selected) if "components" in shows.reads else [],
        "analysis": run_files(ANALYSIS_POINTS, config, selected) if "analysis" in shows.reads else [],
    }


def gallery_files(config: dict) -> list[str]:
    """The gallery pages: one per experiment of the config."""
    return [GALLERY_PNG.format(experiment=e) for e in config["experiments"]]


def gallery_inputs(config: dict, experiment: str) -> dict:
    """What one gallery page depends on: the summaries, the verdicts, the experiment's data set and its
    analysis and components directories (the per-run files in them are :func:`gallery_params`)."""
    only = {experiment: list(config["experiments"][experiment]["stabilizers"])}
    return {
        **SUMMARIES,
        **VERDICTS,
        "data": [DATA.format(dataset=config["experiments"][experiment]["dataset"])],
        "analysis": experiment_dirs(ANALYSIS_DIR, config, only),
        "components": experiment_dirs(COMPONENTS_DIR, config, only),
    }


def gallery_params(config: dict, experiment: str, table: dict[str, dict] | None = None) -> dict:
    """One gallery page's params: the experiment's properties with all its runs (``experiments``, as
    a notebook's) and its per-run files (``analysis``: points.csv, ``components``: components.npz)."""
    table = describe(config) if table is None else table
    props = table[experiment]
    only = {experiment: list(props["stabilizers"])}
    return {
        "experiments": {experiment: {**props, "runs": list(props["stabilizers"])}},
        "analysis": run_files(ANALYSIS_POINTS, config, only),
        "components": run_files(COMPONENTS_NPZ, config, only),
    }


def stage_targets(stage: str, config: dict) -> list[str]:
    """What a stage's target rule ``stage_<name>`` requests: per-experiment directories and summaries
    (every file in them is :func:`stage_files`)."""
    if stage == "train":
        return experiment_dirs(RUN_DIR, config) + [TRAIN_SUMMARY, TRAIN_HISTORY]
    if stage == "analysis":
        return experiment_dirs(ANALYSIS_DIR, config) + [ANALYSIS_SUMMARY]
    if stage == "components":
        return experiment_dirs(COMPONENTS_DIR, config) + [COMPONENTS_SUMMARY, COMPONENTS_SPECTRA]
    return stage_files(stage, config)


def stage_files(stage: str, config: dict) -> list[str]:
    """Every file a stage writes (per run, inside the directories of :func:`stage_targets`)."""
    if stage == "data":
        used = dict.fromkeys(exp["dataset"] for exp in config["experiments"].values())
        return [DATA.format(dataset=d) for d in used]
    if stage == "train":
        return (
            run_paths(MODEL, config)
            + run_paths(HISTORY, config)
            + run_paths(RUN_METRICS, config)
            + [TRAIN_SUMMARY, TRAIN_HISTORY]
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
        notebooks = [p for outs in NOTEBOOKS.values() for p in outs]
        return notebooks + gallery_files(config) + [CLAIMS_JSON, CLAIMS_MD, CLAIMS_METRICS]
    raise KeyError(f"unknown stage {stage!r}; expected one of {list(STAGES)}")
