"""Rules ``summarize_<stage>``: per-run metrics in one JSON and tidy tables (flowtheory.stages.summarize)."""

from flowtheory.pipeline import jobs
from flowtheory.stages import summarize


def main(log):
    stage, par, out = snakemake.params.stage, snakemake.params, snakemake.output
    if stage == "train":
        summarize.summarize_train(list(par.metrics), list(par.history), out.json, out.csv)
    elif stage == "components":
        summarize.summarize_components(list(par.metrics), out.json, out.csv)
    else:
        summarize.summarize_metrics(list(par.metrics), stage, out.json)


jobs.run(snakemake, main)
