# flowtheory: replication pipeline for Feinman & Parthasarathy, "A Linear Systems Theory of
# Normalizing Flows" (arXiv 1907.06496). Run `snakemake --cores all` from the repository root.
# Stages: data -> train -> analysis -> components -> figures (one target rule `stage_<name>` each).
from snakemake.utils import min_version

from flowtheory.pipeline import config as ftconfig

min_version("9.0")


# `--configfile X` replaces the default config instead of being merged into it.
if not workflow.overwrite_configfiles:
    # Snakemake's own message for a file that is not YAML or not a mapping does not name the file
    # (a `--configfile` is read by Snakemake itself, before this file runs)
    try:
        ftconfig.read("config/config.yaml")
    except ftconfig.ConfigError as err:
        raise WorkflowError(str(err))

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/components.smk"
include: "workflow/rules/figures.smk"


report: "workflow/report/workflow.rst"


# Target rules only collect files: on a cluster they run on the head node, not as jobs.
localrules:
    all,
    stage_data,
    stage_train,
    stage_analysis,
    stage_components,
    stage_figures,


# Every stage's outputs, not only the figures: otherwise a per-run file that went missing (a job
# killed mid-run, a deleted run folder) is never rebuilt, since the figures are up to date.
rule all:
    default_target: True
    input:
        rules.stage_data.input,
        rules.stage_train.input,
        rules.stage_analysis.input,
        rules.stage_components.input,
        rules.stage_figures.input,


onsuccess:
    print(on_success())
