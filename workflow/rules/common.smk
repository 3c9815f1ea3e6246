# Shared helpers: config validation, targets and per-rule params, all from src/flowtheory.
import dataclasses
from pathlib import Path

from snakemake.resources import Resource

from flowtheory.pipeline import chaos as ftchaos
from flowtheory.pipeline import config as ftconfig
from flowtheory.pipeline import cost as ftcost
from flowtheory.pipeline import experiments as ftexperiments
from flowtheory.pipeline import hooks
from flowtheory.pipeline import paths
from flowtheory.stages import claims as ftclaims


def train_runtime_set():
    """Minutes that `--set-resources train:runtime=...` (or a profile's `set-resources`) gives
    every train job, or None: then the train rule's own runtime holds (runtime_min)."""
    value = workflow.resource_settings.overwrite_resources.get("train", {}).get(
        "runtime"
    )
    value = getattr(value, "value", value)
    if value is None:
        return None
    return float(Resource.parse_human_friendly("runtime", value))


# Before any job: the config (schema and cross-field checks), then what depends on the machine and
# the workflow: user-supplied input files, a CUDA device (where jobs run on this machine: on a
# cluster each job's own Snakemake checks its node), and each experiment's estimated training time
# against its train job's runtime.
try:
    ftconfig.check(config, workflow.source_path("../schemas/config.schema.yaml"))
    ftconfig.check_input_files(config)
    if workflow.local_exec:
        ftconfig.check_device(config)
    ftcost.check(config, train_runtime_set())
except ftconfig.ConfigError as err:
    raise WorkflowError(str(err))

# paper_map.yaml too, before any job runs: a typo in a claim is one error naming the claim and key
# (the claims rule, the last job, would otherwise be the first to read it)
try:
    ftclaims.load_paper_map(paths.PAPER_MAP)
except ftclaims.PaperMapError as err:
    raise WorkflowError(str(err))


wildcard_constraints:
    dataset=r"[A-Za-z0-9_.-]+",
    experiment=r"[A-Za-z0-9_.-]+",
    stabilizer=r"[A-Za-z0-9_.-]+",
    seed=r"\d+",


CONDA_ENV = "../envs/pipeline.yaml"

# the report's front page embeds the scorecard (`.. flowtheory-image::`, workflow/report/workflow.rst)
hooks.register_report_directives()

# Every experiment's properties (data set ground truth, flow family, stabilizers): what claims and
# figures select experiments by (flowtheory.pipeline.experiments).
EXPERIMENTS = ftexperiments.describe(config)


def code(stage):
    """The package modules a stage's rules import: edits to them rerun the rule."""
    return paths.STAGES[stage].module_paths()


def dataset_spec(wildcards):
    return config["data"]["datasets"][wildcards.dataset]


def input_files_of_dataset(wildcards):
    """User-supplied files (MNIST IDX): inputs, so that replacing one reruns the data job."""
    return ftconfig.input_files(config).get(wildcards.dataset, [])


def data_of_run(wildcards):
    return paths.DATA.format(
        dataset=config["experiments"][wildcards.experiment]["dataset"]
    )


def intrinsic_dim_of_run(wildcards):
    """The true intrinsic dimension of the run's data set (None when unknown)."""
    return EXPERIMENTS[wildcards.experiment]["dataset"]["intrinsic_dim"]


def train_runs(wildcards):
    """The experiment's runs: each one's resolved settings and the files it writes."""
    return [
        {
            **r,
            "spec": dataclasses.asdict(
                ftconfig.run_spec(
                    config, wildcards.experiment, r["stabilizer"], r["seed"]
                )
            ),
        }
        for r in paths.experiment_runs(
            config,
            wildcards.experiment,
            model=paths.MODEL,
            history=paths.HISTORY,
            metrics=paths.RUN_METRICS,
        )
    ]


def analysis_runs(wildcards):
    return paths.experiment_runs(
        config,
        wildcards.experiment,
        model=paths.MODEL,
        run_metrics=paths.RUN_METRICS,
        points=paths.ANALYSIS_POINTS,
        metrics=paths.ANALYSIS_METRICS,
    )


def components_runs(wildcards):
    return paths.experiment_runs(
        config,
        wildcards.experiment,
        model=paths.MODEL,
        run_metrics=paths.RUN_METRICS,
        npz=paths.COMPONENTS_NPZ,
        csv=paths.COMPONENTS_CSV,
        metrics=paths.COMPONENTS_METRICS,
    )


def is_highdim(wildcards):
    return config["experiments"][wildcards.experiment]["dataset"] in highdim_datasets()


def highdim_datasets():
    return [n for n, d in config["data"]["datasets"].items() if d["kind"] == "mnist"]


def mem_mb(wildcards):
    """One run at a time: the memory of the largest run."""
    return 4000 if is_highdim(wildcards) else 1000


def runtime_min(wildcards):
    """The train job's minutes: per run, flowtheory.pipeline.cost.MINUTES_PER_RUN (_HIGHDIM on MNIST)."""
    return ftcost.runtime_min(config, wildcards.experiment)


def post_runtime_min(wildcards):
    """The analysis and components jobs' minutes: per run, flowtheory.pipeline.cost.POST_MINUTES_PER_RUN."""
    return ftcost.runtime_min(config, wildcards.experiment, "analysis")


def run_files(template):
    return paths.run_files(template, config)


def experiment_dirs(template):
    return paths.experiment_dirs(template, config)


def notebook_inputs(name):
    """Stage summaries plus the per-run outputs of the runs notebook `name` shows."""
    if not Path(workflow.basedir, "workflow", "notebooks", f"{name}.py").is_file():
        raise WorkflowError(
            f"workflow/notebooks/{name}.py: figure notebook not found; "
            f"rule {name} needs it (a jupytext percent file)"
        )

    def inputs(wildcards):
        return {**paths.notebook_inputs(config, name), "code": code("figures")}

    return inputs


def notebook_files(name):
    """The per-run files notebook `name` reads, inside its input directories."""
    return paths.notebook_files(config, name)


def notebook_experiments(name):
    """The experiments notebook `name` shows, selected by their properties, with those properties."""
    return paths.notebook_experiments(config, name, EXPERIMENTS)


def gallery_inputs(wildcards):
    """One experiment's gallery page: its stage directories and data, the summaries and verdicts."""
    return {
        **paths.gallery_inputs(config, wildcards.experiment),
        "code": code("figures"),
    }


def gallery_params(wildcards):
    """One experiment's properties and its per-run files, for its gallery page."""
    return paths.gallery_params(config, wildcards.experiment, EXPERIMENTS)


def notebook_outputs(name):
    """A figure's PNG (in the report, with its caption) and PDF, or a table's CSV and Markdown."""
    first, second = paths.NOTEBOOKS[name]
    figure = name.startswith("fig_")
    return {
        ("png" if figure else "csv"): report(
            first,
            caption=f"../report/{name}.rst",
            category="Figures" if figure else "Tables",
        ),
        ("pdf" if figure else "md"): second,
    }


def on_success():
    return hooks.on_success(config, workflow.overwrite_configfiles)
